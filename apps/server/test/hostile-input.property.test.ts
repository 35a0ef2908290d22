import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { parse } from 'yaml';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifyInstance } from 'fastify';
import { CreateSubscriptionBody, PrepareMessageBody } from '@herald/contract';
import { buildApp } from '../src/app';
import { parseConfig } from '../src/config';
import { ADMIN_TOKEN, asAdmin, asProducer, createTestDatabase, prepareBody, PRODUCER_TOKEN, REDIS_URL, testEnv } from './helpers';
import { arbitraries, type Document, INVALID_DATE_TIMES, jsonText, judge, type Operation, operations, unrepresentable } from './openapi-fuzz';

// Property-based hostile input: generated requests, valid and invalid, against the real API and
// MariaDB. Every answer must be < 500, whatever is accepted must satisfy the contract schema, and
// the reference message and subscription stored first must come out unchanged.
// A validator of its own, compiled from the contract's JSON Schema, judges what the server accepted.
//
// The first suites below generated ~11,400 requests and still never sent an optional body: their
// generators were written by hand for four request shapes (prepare, raw prepare text, message
// paths and list queries, subscription create/patch), so redeliver, rotate-secret and the
// subscription replay were never called at all; and outside prepare and create the only verdict
// was "< 500", so an invalid body a route silently accepted (200 to `graceMs: -5`) would have
// passed anyway. The last suite walks openapi.yaml instead: every operation, parameter and body
// the document lists, valid and invalid values built from its schemas, and a request the
// document calls invalid must be refused, not merely survived.
const contract = new Ajv({ discriminator: true, strict: false, allErrors: true });
addFormats.default(contract, ['uri', 'date-time']);
const validPrepare = contract.compile(PrepareMessageBody);
const validSubscription = contract.compile(CreateSubscriptionBody);

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let referenceMessage: unknown;
let referenceSubscription: { id: string };
let requests = 0;
let accepted = 0;
let queuePrefix: string;
const statusTable = new Map<string, Map<number, number>>();
const count = (route: string, status: number) => {
  const row = statusTable.get(route) ?? new Map<number, number>();
  row.set(status, (row.get(status) ?? 0) + 1);
  statusTable.set(route, row);
};

beforeAll(async () => {
  db = await createTestDatabase('prop');
  const env = testEnv(db.url, { HERALD_MAX_BODY_BYTES: '65536' });
  queuePrefix = env.HERALD_QUEUE_PREFIX as string;
  app = await buildApp(parseConfig(env), { logger: false, worker: false });
  await app.ready();
  await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('reference') });
  referenceMessage = (await app.inject({ url: '/v1/messages/reference', headers: asProducer })).json();
  referenceSubscription = (await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'ref', topic: 'ref.#', target: { type: 'webhook', url: 'https://hooks.example.com/ref' } } })).json();
});
afterAll(async () => {
  expect((await app.inject({ url: '/v1/messages/reference', headers: asProducer })).json()).toEqual(referenceMessage);
  const sub = await app.inject({ url: `/v1/subscriptions/${referenceSubscription.id}`, headers: asAdmin });
  expect(sub.json()).toMatchObject({ name: 'ref', topic: 'ref.#', enabled: true });
  const statuses = [...new Set([...statusTable.values()].flatMap((row) => [...row.keys()]))].sort((a, b) => a - b);
  const lines = [...statusTable.entries()].sort().map(([route, row]) => `${route.padEnd(44)}${statuses.map((s) => String(row.get(s) ?? '').padStart(7)).join('')}`);
  console.log(`[hostile] ${requests} generated requests, ${accepted} accepted\n${''.padEnd(44)}${statuses.map((s) => String(s).padStart(7)).join('')}\n${lines.join('\n')}`);
  expect(requests).toBeGreaterThanOrEqual(10_000);
  await app.close();
  await db.drop();
  // Deliveries scheduled by generated confirms and replays sit in this run's own queue keys.
  const redis = new Redis(REDIS_URL);
  for await (const keys of redis.scanStream({ match: `${queuePrefix}*`, count: 500 })) if ((keys as string[]).length) await redis.del(...(keys as string[]));
  redis.disconnect();
});

/** The operation a generated URL addresses, as openapi.yaml names it (one table row each). */
function routeOf(method: string, url: string): string {
  const path = url.split('?')[0] ?? '';
  const known = /^\/v1\/(messages|subscriptions)\/.*?(\/(confirm|cancel|deliveries|redeliver|rotate-secret))?$/.exec(path);
  return `${method} ${known ? `/v1/${known[1]}/{id}${known[2] ?? ''}` : path}`;
}

async function send(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: string, headers: Record<string, string> = asProducer) {
  requests += 1;
  const res = await app.inject({ method, url, headers: { ...headers, ...(payload !== undefined && { 'content-type': 'application/json' }) }, payload });
  count(routeOf(method, url), res.statusCode);
  expect(res.statusCode, `${method} ${url} ${payload?.slice(0, 300)} → ${res.body.slice(0, 300)}`).toBeLessThan(500);
  if (res.statusCode < 300) accepted += 1;
  return res;
}

const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), fc.constantFrom('', ' ', '.', '..', 'a.b', 'x'.repeat(129), 'y'.repeat(201), '\u0000', '\r\n', '🚀', '__proto__', 'constructor'));
const anyJson = fc.jsonValue({ maxDepth: 4 });
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const id = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_:-]{1,128}$/), text, fc.integer(), fc.constant(null));
const topic = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{1,20}(\.[A-Za-z0-9_-]{1,20}){0,3}$/), text, fc.integer());
const number = fc.oneof(fc.integer(), fc.integer({ min: -1, max: 700_000_000 }), fc.double(), fc.string(), fc.constant(null), fc.bigInt().map(String));
const url = fc.oneof(fc.webUrl(), text, fc.constantFrom('http://127.0.0.1/x', 'https://hooks.example.com/x', 'ftp://x/y', 'https://u:p@h/x'));
const headerMap = fc.oneof(fc.dictionary(fc.oneof(fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/), text), fc.oneof(fc.string(), text, fc.integer())), anyJson);

const prepareBodies = fc.record(
  {
    id,
    topic,
    payload: anyJson,
    key: fc.oneof(fc.string(), text),
    headers: headerMap,
    checkUrl: url,
    checkAfterMs: number,
    checkIntervalMs: number,
    maxChecks: number,
    onChecksExhausted: fc.oneof(fc.constantFrom('rollback', 'hold'), text),
    delayMs: number,
    confirm: fc.oneof(fc.boolean(), anyJson),
    extra: anyJson,
  },
  { requiredKeys: [] },
);

describe('hostile input, generated', () => {
  it('prepare: never 5xx, and whatever is accepted satisfies the contract', async () => {
    await fc.assert(
      fc.asyncProperty(prepareBodies, async (body) => {
        const res = await send('POST', '/v1/messages', JSON.stringify(body));
        if (res.statusCode === 201 || res.statusCode === 200) {
          expect(validPrepare(body), `${JSON.stringify(body)} ${JSON.stringify(validPrepare.errors)}`).toBe(true);
          expect(res.json().payload).toEqual(body.payload);
        }
      }),
      { numRuns: 1_800 },
    );
  }, 180_000);

  it('raw bodies: malformed, deep, duplicated keys, huge header maps: never 5xx', async () => {
    const deep = fc.integer({ min: 1, max: 5_000 }).map((n) => `{"topic":"a","confirm":true,"payload":${'['.repeat(n)}${']'.repeat(n)}}`);
    const dupKeys = fc.tuple(topic, topic).map(([a, b]) => `{"topic":${JSON.stringify(a)},"topic":${JSON.stringify(b)},"payload":1,"confirm":true}`);
    const manyHeaders = fc.integer({ min: 30, max: 2_000 }).map((n) => JSON.stringify({ topic: 'a', payload: 1, confirm: true, headers: Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-${i}`, 'v']) ) }));
    const raw = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), deep, dupKeys, manyHeaders, anyJson.map((v) => JSON.stringify(v)));
    await fc.assert(
      fc.asyncProperty(raw, async (body) => {
        await send('POST', '/v1/messages', body);
      }),
      { numRuns: 1_200 },
    );
  }, 180_000);

  it('paths and queries: never 5xx', async () => {
    const segment = fc.oneof(id.map(String), text).map((s) => encodeURIComponent(s));
    const call = fc.oneof(
      segment.map((s) => ['POST', `/v1/messages/${s}/confirm`] as const),
      segment.map((s) => ['POST', `/v1/messages/${s}/cancel`] as const),
      segment.map((s) => ['GET', `/v1/messages/${s}`] as const),
      segment.map((s) => ['GET', `/v1/messages/${s}/deliveries`] as const),
      fc.record({ status: maybe(text), topic: maybe(topic.map(String)), limit: maybe(number.map(String)), cursor: maybe(text), createdBefore: maybe(text) }).map(
        (q) => ['GET', `/v1/messages?${new URLSearchParams(Object.entries(q).filter(([, v]) => v !== undefined) as Array<[string, string]>)}`] as const,
      ),
    );
    await fc.assert(
      fc.asyncProperty(call, async ([method, path]) => {
        await send(method, path);
      }),
      { numRuns: 1_000 },
    );
  }, 180_000);

  it('subscriptions: never 5xx, and whatever is accepted satisfies the contract', async () => {
    const target = fc.oneof(
      fc.record({ type: fc.constant('webhook'), url, headers: headerMap, timeoutMs: number }, { requiredKeys: ['type'] }),
      fc.record({ type: fc.constant('rabbitmq'), exchange: fc.oneof(fc.string(), text), routingKey: text }, { requiredKeys: ['type'] }),
      anyJson,
    );
    const body = fc.record({ name: fc.oneof(fc.string(), text), topic: fc.oneof(topic, fc.constantFrom('#', '*', 'a.*.#')), target, maxAttempts: number, backoff: fc.oneof(fc.record({ initialMs: number, maxMs: number }), anyJson), enabled: fc.oneof(fc.boolean(), anyJson) }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const res = await send('POST', '/v1/subscriptions', JSON.stringify(b), asAdmin);
        if (res.statusCode === 201) {
          expect(validSubscription(b), `${JSON.stringify(b)} ${JSON.stringify(validSubscription.errors)}`).toBe(true);
          await send('DELETE', `/v1/subscriptions/${res.json().id}`, undefined, asAdmin);
        }
        const patched = await send('PATCH', `/v1/subscriptions/${referenceSubscription.id}`, JSON.stringify({ ...b, name: 'ref', topic: 'ref.#', enabled: true, target: { type: 'webhook', url: 'https://hooks.example.com/ref' } }), asAdmin);
        expect(patched.statusCode).toBeLessThan(500);
      }),
      { numRuns: 600 },
    );
  }, 180_000);
});

describe('every route of openapi.yaml, generated from the document', () => {
  const doc = parse(readFileSync(new URL('../../../openapi.yaml', import.meta.url), 'utf8')) as Document;
  const gen = arbitraries(doc);
  const oracle = judge(doc);
  const tokens = { admin: `Bearer ${ADMIN_TOKEN}`, producer: `Bearer ${PRODUCER_TOKEN}`, wrong: 'Bearer not-a-token', none: undefined };
  const storedFields = ['id', 'topic', 'key', 'payload', 'headers', 'checkUrl', 'checkAfterMs', 'checkIntervalMs', 'maxChecks', 'onChecksExhausted', 'delayMs'] as const;

  // Violations are collected, not thrown at the first one, so a run reports every kind it met.
  const violations = new Map<string, { count: number; examples: string[] }>();
  const violation = (kind: string, example: string) => {
    const v = violations.get(kind) ?? { count: 0, examples: [] };
    v.count += 1;
    if (v.examples.length < 3) v.examples.push(example.slice(0, 400));
    violations.set(kind, v);
  };

  // Real targets for the {id} of each path, so generated bodies reach the handlers, not just 404s.
  const pool: { messages: string[]; subscriptions: string[] } = { messages: [], subscriptions: [] };
  const newSubscription = async (i: number, rabbit = false) => {
    const target = rabbit ? { type: 'rabbitmq', exchange: 'fz' } : { type: 'webhook', url: 'https://hooks.example.com/fz' };
    const res = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: `fz-${i}`, topic: 'fz.#', target } });
    return (res.json() as { id: string }).id;
  };
  beforeAll(async () => {
    for (let i = 0; i < 3; i += 1) pool.subscriptions.push(await newSubscription(i, i === 2));
    for (let i = 0; i < 6; i += 1) {
      const id = `fz-${i}`;
      await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { ...prepareBody(id), topic: 'fz.order', ...(i % 2 === 0 && { confirm: true }) } });
      pool.messages.push(id);
    }
  });

  const asText = (v: unknown) => (typeof v === 'string' ? v : jsonText(v));
  const normalise = (v: unknown): unknown =>
    Object.is(v, -0) ? 0 : Array.isArray(v) ? v.map(normalise) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)])) : v;

  interface Case { op: Operation; id?: string; query: Array<[string, string]>; body?: string; token: keyof typeof tokens }

  function caseFor(op: Operation): fc.Arbitrary<Case> {
    const params = op.parameters ?? [];
    const idParam = params.find((p) => p.in === 'path');
    const known = op.path.startsWith('/v1/subscriptions') ? pool.subscriptions : pool.messages;
    const id = idParam
      ? fc.oneof(
          // read at generation time: a deleted subscription's replacement is picked too
          { weight: 6, arbitrary: fc.nat({ max: known.length - 1 }).map((i) => known[i] as string) },
          { weight: 2, arbitrary: gen.valid(idParam.schema).map(asText) },
          { weight: 2, arbitrary: gen.invalid(idParam.schema).map(asText) },
        )
      : fc.constant(undefined);
    const queryParams = params.filter((p) => p.in === 'query');
    const value = (p: (typeof queryParams)[number]) => fc.oneof({ weight: 3, arbitrary: gen.valid(p.schema).map(asText) }, { weight: 1, arbitrary: gen.invalid(p.schema).map(asText) });
    const query = fc
      .tuple(
        ...queryParams.map((p) => fc.option(value(p), { nil: undefined, freq: 2 }).map((v): Array<[string, string]> => (v === undefined ? [] : [[p.name, v]]))),
        // now and then an unknown parameter, or one given twice
        fc.oneof(
          { weight: 9, arbitrary: fc.constant<Array<[string, string]>>([]) },
          { weight: 1, arbitrary: fc.constantFrom<Array<[string, string]>>([['extra', '1']], ...queryParams.map((p): Array<[string, string]> => [[p.name, '1'], [p.name, '2']])) },
        ),
      )
      .map((parts) => parts.flat());
    const schema = op.requestBody?.content['application/json']?.schema;
    const body: fc.Arbitrary<string | undefined> = schema
      ? fc.oneof(
          { weight: 3, arbitrary: gen.valid(schema).map(jsonText) },
          { weight: 4, arbitrary: gen.invalid(schema).map(jsonText) },
          { weight: 1, arbitrary: fc.constant(undefined) },
          { weight: 1, arbitrary: fc.constantFrom('{', 'null', '[]', '"x"', '1e400', '{"a":1e400}', '{"a":1,"a":2}') },
        )
      : op.method === 'POST'
        ? fc.option(gen.anyJson.map(jsonText), { nil: undefined, freq: 4 })
        : fc.constant(undefined);
    const token = op.security?.length ? fc.constantFrom<Case['token']>('admin', 'admin', 'producer', 'producer', 'wrong', 'none') : fc.constant<Case['token']>('none');
    return fc.record({ op: fc.constant(op), id, query, body, token }) as fc.Arbitrary<Case>;
  }

  /** What the document says about this request: undefined when it is valid. */
  function invalidBecause(c: Case): string | undefined {
    const params = c.op.parameters ?? [];
    const pathProblem = c.id === undefined ? undefined : oracle.parameterProblem(params, 'path', { id: c.id });
    const values: Record<string, string | string[]> = {};
    for (const [k, v] of c.query) values[k] = k in values ? [values[k] as string, v].flat() : v;
    const queryProblem = c.query.length ? oracle.parameterProblem(params, 'query', values) : undefined;
    const schema = c.op.requestBody?.content['application/json']?.schema;
    let bodyProblem: string | undefined;
    if (c.body === undefined) {
      if (c.op.requestBody?.required) bodyProblem = 'body is required';
    } else {
      let value: unknown;
      try {
        value = JSON.parse(c.body);
      } catch {
        return 'body is not JSON';
      }
      bodyProblem = unrepresentable(value) ?? (schema ? oracle.problem(schema, value, 'body') : undefined);
    }
    return pathProblem ?? queryProblem ?? bodyProblem;
  }

  async function readBack(c: Case, answer: { id: string }, status: number) {
    const sent = JSON.parse(c.body ?? '{}') as Record<string, unknown>;
    const stored = (await app.inject({ url: `/v1/messages/${encodeURIComponent(answer.id)}`, headers: asProducer })).json() as Record<string, unknown>;
    requests += 1;
    for (const field of storedFields) {
      if (!(field in sent)) continue;
      if (JSON.stringify(normalise(stored[field])) !== JSON.stringify(normalise(sent[field])) || unrepresentable(sent[field])) {
        violation(`POST /v1/messages ${status}: ${field} read back differs from what was sent`, `sent ${c.body} → stored ${JSON.stringify(stored[field])}`);
      }
    }
  }

  it('walks every operation: no 5xx, errors in the error shape, invalid requests refused, statuses and answers as documented, accepted messages stored as sent', async () => {
    const all = operations(doc);
    expect(all.map((o) => `${o.method} ${o.path}`)).toHaveLength(25);
    const weighted = all.map((op) => ({ weight: op.requestBody ? 4 : op.parameters?.length ? 2 : 1, arbitrary: caseFor(op) }));
    const seed = Number(process.env.HERALD_FUZZ_SEED ?? Date.now() % 2 ** 31);
    await fc.assert(
      fc.asyncProperty(fc.oneof(...weighted), async (c) => {
        const route = `${c.op.method} ${c.op.path}`;
        let path = c.op.path;
        try {
          if (c.id !== undefined) path = path.replace('{id}', encodeURIComponent(c.id));
        } catch {
          return; // a lone surrogate cannot be put in a URL at all
        }
        const qs = c.query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
        const authorization = tokens[c.token];
        requests += 1;
        const res = await app.inject({
          method: c.op.method as 'GET',
          url: qs ? `${path}?${qs}` : path,
          headers: { ...(authorization && { authorization }), ...((c.body !== undefined || c.op.method !== 'GET') && { 'content-type': 'application/json' }) },
          payload: c.body,
        });
        count(route, res.statusCode);
        const example = `${c.op.method} ${qs ? `${path}?${qs}` : path} [${c.token}] ${c.body ?? '(no body)'} → ${res.statusCode} ${res.body}`;
        const why = invalidBecause(c);
        if (res.statusCode >= 500) violation(`${res.statusCode} on ${route}`, example);
        if (res.statusCode < 300) accepted += 1;
        if (why && res.statusCode < 400) violation(`${route} accepted a request the document refuses: ${why.includes('no double holds') ? 'a number no double holds' : why.replace(/ must .*| is .*/, '')}`, `${why}: ${example}`);
        const documented = c.op.responses[String(res.statusCode)];
        if (!documented && res.statusCode < 500) violation(`${route} answered an undocumented ${res.statusCode}`, example);
        const contentType = String(res.headers['content-type'] ?? '');
        if (contentType.startsWith('application/json')) {
          const answer = res.json() as Record<string, unknown>;
          if (res.statusCode >= 400 && !(answer.statusCode === res.statusCode && typeof answer.error === 'string' && typeof answer.message === 'string')) {
            violation(`${route} ${res.statusCode} not in the error shape`, example);
          }
          const schema = documented?.content?.['application/json']?.schema;
          const broken = schema ? oracle.problem(schema, answer, 'answer') : undefined;
          if (broken) violation(`${route} ${res.statusCode} answer breaks its documented schema: ${broken}`, example);
          if (route === 'POST /v1/messages' && res.statusCode < 300) await readBack(c, answer as { id: string }, res.statusCode);
        }
        // A generated DELETE may remove a pooled subscription: put a fresh one in its place.
        if (route === 'DELETE /v1/subscriptions/{id}' && res.statusCode === 204 && c.id) {
          const i = pool.subscriptions.indexOf(c.id);
          if (i >= 0) pool.subscriptions[i] = await newSubscription(i, i === 2);
        }
      }),
      { numRuns: 5_500, seed },
    );
    const report = [...violations.entries()].sort((a, b) => b[1].count - a[1].count).map(([kind, v]) => `${v.count}× ${kind}\n    e.g. ${v.examples.join('\n    e.g. ')}`);
    console.log(`[hostile/openapi] seed ${seed} (HERALD_FUZZ_SEED replays it): ${report.length} kinds of violation\n${report.join('\n')}`);
    expect(report).toEqual([]);
  }, 240_000);

  it('knows the date-times Herald must refuse', () => {
    // The judge's own reading, checked once: it is what makes the suite above catch a 500.
    for (const bad of INVALID_DATE_TIMES) expect(oracle.problem({ type: 'string', format: 'date-time' }, bad, 'x'), bad).toBeDefined();
    expect(oracle.problem({ type: 'string', format: 'date-time' }, '2026-12-31T23:59:59.999Z', 'x')).toBeUndefined();
  });
});
