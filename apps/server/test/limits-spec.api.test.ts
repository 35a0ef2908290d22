import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { asAdmin, buildTestApp, createTestDatabase } from './helpers';

// openapi.yaml promises 429 (with Retry-After) and 503 on the routes the limits cover; this
// holds the document and the server to each other, route by route.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let app: FastifyInstance;

interface Operation {
  security?: unknown[];
  responses: Record<string, { headers?: Record<string, unknown> }>;
}

let operations: Array<{ method: string; path: string; op: Operation }>;

beforeAll(async () => {
  db = await createTestDatabase('lspec');
  app = await buildTestApp(db.url, { HERALD_RATE_LIMIT_PER_MINUTE: '1', HERALD_ROLE: 'api' });
  const spec = app.swagger() as unknown as { paths: Record<string, Record<string, Operation>> };
  operations = Object.entries(spec.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ method: method.toUpperCase(), path, op })));
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

const concrete = (path: string) => path.replace('{id}', 'sub_00000000000000000000');

describe('429 and 503 in the OpenAPI document', () => {
  it('lists 429 with Retry-After on exactly the routes the rate limit answers 429 on', async () => {
    // Spend the token's budget of one request; from now on every limited route answers 429.
    await app.inject({ method: 'GET', url: '/v1/messages', headers: asAdmin });
    expect(operations.length).toBeGreaterThan(15);
    for (const { method, path, op } of operations) {
      const res = await app.inject({ method: method as 'GET', url: concrete(path), headers: { ...asAdmin, 'content-type': 'application/json' }, payload: method === 'GET' ? undefined : '{}' });
      const limited = res.statusCode === 429;
      expect(Boolean(op.responses['429']), `${method} ${path}: documented 429 vs answered ${res.statusCode}`).toBe(limited);
      if (limited) {
        expect(Number(res.headers['retry-after']), `${method} ${path}`).toBeGreaterThan(0);
        expect(op.responses['429']?.headers?.['retry-after'], `${method} ${path}`).toBeDefined();
      }
      // Authenticated routes are the limited ones; probes, metrics and docs never are.
      expect(limited, `${method} ${path}`).toBe(Boolean(op.security?.length));
    }
  });

  it('lists 503 with Retry-After on every authenticated route (load shedding, MySQL down)', () => {
    for (const { method, path, op } of operations.filter((o) => o.op.security?.length)) {
      expect(op.responses['503']?.headers?.['retry-after'], `${method} ${path}`).toBeDefined();
    }
  });
});
