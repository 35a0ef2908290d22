import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { STATUS_CODES } from 'node:http';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { buildApp } from '../src/app';
import { parseConfig } from '../src/config';

// openapi.yaml as users get it: it must pass Redocly's recommended rules, and what Swagger UI
// shows as examples must be answers Herald can really give.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);

interface Media { schema?: Record<string, unknown>; example?: unknown }
interface Operation { requestBody?: { required?: boolean }; responses: Record<string, { content?: Record<string, Media> }> }
interface Document { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, unknown> } }

const load = async (): Promise<Document> => parse(await readFile(`${root}openapi.yaml`, 'utf8')) as Document;

function responses(doc: Document) {
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).flatMap(([method, op]) =>
      Object.entries(op.responses).map(([status, response]) => ({ where: `${method.toUpperCase()} ${path} ${status}`, status: Number(status), media: response.content?.['application/json'] })),
    ),
  );
}

/** Checks the fields that go together with a message's status (DESIGN's state machine). */
function stateProblems(m: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const deliveries = (m.deliveries ?? []) as Array<{ status: string }>;
  const expect = (ok: boolean, what: string) => ok || problems.push(`${m.status} message ${what}`);
  const committed = ['confirmed', 'delivered', 'failed'].includes(m.status as string);
  expect(committed === (m.confirmedAt !== null), committed ? 'needs confirmedAt' : 'has confirmedAt');
  expect((m.status === 'cancelled') === (m.cancelledAt !== null), m.status === 'cancelled' ? 'needs cancelledAt' : 'has cancelledAt');
  expect((m.status === 'prepared') === (m.nextCheckAt !== null), m.status === 'prepared' ? 'needs nextCheckAt' : 'has nextCheckAt');
  expect(committed || deliveries.length === 0, 'has deliveries');
  if (m.status === 'delivered') expect(deliveries.length > 0 && deliveries.every((d) => d.status === 'delivered'), 'has undelivered deliveries');
  if (m.status === 'failed') expect(deliveries.some((d) => d.status === 'dead'), 'has no dead delivery');
  if (m.status === 'confirmed') expect(deliveries.every((d) => d.status !== 'dead'), 'has a dead delivery');
  if (Array.isArray(m.checkAttempts)) expect(m.checkAttempts.length === m.checks, 'counts checks and check attempts differently');
  for (const at of ['confirmedAt', 'cancelledAt', 'updatedAt'] as const) {
    if (typeof m[at] === 'string') expect(m[at] >= (m.createdAt as string), `has ${at} before createdAt`);
  }
  return problems;
}

function stateProblemsOfDelivery(d: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const expect = (ok: boolean, what: string) => ok || problems.push(`${d.status} delivery ${what}`);
  expect((d.status === 'delivered') === (d.deliveredAt !== null), 'deliveredAt');
  expect((d.status === 'dead') === (d.deadAt !== null), 'deadAt');
  expect((d.status === 'pending') === (d.nextAttemptAt !== null), 'nextAttemptAt');
  return problems;
}

describe('openapi.yaml', () => {
  it('passes redocly lint with the recommended rules, without a single error', async () => {
    const bin = `${root}node_modules/@redocly/cli/bin/cli.js`;
    const { stdout } = await run(process.execPath, [bin, 'lint', 'openapi.yaml', '--extends=recommended', '--format=json'], { cwd: root }).catch(
      // redocly exits 1 when it finds errors; the JSON report is what matters.
      (error: { stdout: string }) => ({ stdout: error.stdout }),
    );
    const report = JSON.parse(stdout) as { totals: { errors: number }; problems: Array<{ severity: string; ruleId: string; message: string; location: Array<{ pointer: string }> }> };
    const errors = report.problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId} ${p.location[0]?.pointer}: ${p.message}`);
    expect(errors).toEqual([]);
    expect(report.totals.errors).toBe(0);
    // No warning either: any (an inline discriminator branch, a probe without a 4xx, a missing
    // licence) is a regression of this document.
    expect(report.problems.map((p) => `${p.ruleId}: ${p.message}`)).toEqual([]);
  }, 60_000);

  it('gives every error status an example of that very status, in the error shape', async () => {
    const doc = await load();
    const errors = responses(doc).filter((r) => r.status >= 400);
    expect(errors.length).toBeGreaterThan(80);
    for (const { where, status, media } of errors) {
      const example = media?.example as { statusCode?: number; error?: string; message?: string } | undefined;
      // /readyz answers 503 with its readiness body while a backing service is down.
      if (where === 'GET /readyz 503') {
        expect(example, where).toMatchObject({ status: 'unavailable' });
        continue;
      }
      expect(example, where).toMatchObject({ statusCode: status, error: STATUS_CODES[status], message: expect.any(String) });
    }
  });

  it('shows only examples that satisfy their schema, and messages and deliveries only in states Herald produces', async () => {
    const doc = await load();
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(ajv, ['uri', 'date-time']);
    ajv.addSchema({ $id: 'doc', components: doc.components });
    let messages = 0;
    for (const { where, media } of responses(doc)) {
      if (media?.example === undefined || !media.schema) continue;
      const schema = JSON.parse(JSON.stringify(media.schema).replace(/"#\/components\//g, '"doc#/components/'));
      const validate = ajv.compile(schema);
      expect(validate(media.example), `${where}: ${ajv.errorsText(validate.errors)}`).toBe(true);
      const example = media.example as Record<string, unknown>;
      const found = 'status' in example && 'confirmedAt' in example ? [example] : Array.isArray(example.items) ? (example.items as Array<Record<string, unknown>>) : [];
      for (const item of found) {
        if ('confirmedAt' in item) {
          messages += 1;
          expect(stateProblems(item), where).toEqual([]);
        } else if ('deliveredAt' in item) {
          expect(stateProblemsOfDelivery(item), where).toEqual([]);
        }
      }
    }
    expect(messages).toBeGreaterThanOrEqual(6);
  });
});

describe('what the server checks before its handlers run', () => {
  it('413, 414, 415 and 431 are documented on exactly the routes that answer them, and a body is required exactly where its absence is a 400', async () => {
    // An app whose MySQL and Redis are unreachable is enough: these answers come before any
    // handler, and a handler that does run answers 503 rather than touching a shared database.
    const env = { HERALD_INSECURE_NO_AUTH: 'true', HERALD_RATE_LIMIT_PER_MINUTE: '0', HERALD_MAX_BODY_BYTES: '1024', DATABASE_URL: 'mysql://root@127.0.0.1:1/none', REDIS_URL: 'redis://127.0.0.1:1' };
    const app = await buildApp(parseConfig(env), { logger: false, worker: false });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const doc = await load();
      const send = async (method: string, path: string, init: { headers?: Record<string, string>; body?: string } = {}) => {
        const id = path.startsWith('/v1/subscriptions') ? 'sub_0123456789abcdef0123' : 'order-1';
        const res = await fetch(`${base}${path.replace('{id}', id)}`, { method: method.toUpperCase(), ...init });
        await res.arrayBuffer();
        return res.status;
      };
      let checked = 0;
      for (const [path, ops] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(ops)) {
          const documented = (status: number) => Boolean(op.responses[String(status)]);
          const where = `${method.toUpperCase()} ${path}`;
          const hasBody = method !== 'get';
          expect((await send(method, path, { headers: { 'x-big': 'x'.repeat(20_000) } })) === 431, `${where} 431`).toBe(documented(431));
          expect(documented(414), `${where} 414`).toBe(path.includes('{id}'));
          if (path.includes('{id}')) expect(await send(method, path.replace('{id}', 'a'.repeat(300))), `${where} 414`).toBe(414);
          if (hasBody) {
            expect(await send(method, path, { headers: { 'content-type': 'text/plain' }, body: 'x' }), `${where} 415`).toBe(415);
            expect(await send(method, path, { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pad: 'x'.repeat(2_000) }) }), `${where} 413`).toBe(413);
          }
          expect([documented(413), documented(415)], `${where} 413/415`).toEqual([hasBody, hasBody]);
          if (op.requestBody) {
            const absent = await send(method, path, { headers: { 'content-type': 'application/json' } });
            expect(absent === 400, `${where}: requestBody.required ${op.requestBody.required}, no body answered ${absent}`).toBe(op.requestBody.required);
          }
          checked += 1;
        }
      }
      expect(checked).toBe(25);
    } finally {
      await app.close();
    }
  });
});
