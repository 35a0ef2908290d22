// Rate limits and load shedding; run with the fault tests, on their own, because the overload
// test measures this process's event-loop lag, which other test files running alongside would add to.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asAdmin, asProducer, buildTestApp, createTestDatabase, prepareBody, testPrefix } from './helpers';

let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase('lim');
});
afterAll(async () => {
  await db?.drop();
});

describe('rate limiting', () => {
  it('counts per token in Redis, across replicas, and answers 429 with Retry-After', async () => {
    const shared = { HERALD_QUEUE_PREFIX: testPrefix(), HERALD_RATE_LIMIT_PER_MINUTE: '10', HERALD_ROLE: 'api' };
    const [a, b] = await Promise.all([buildTestApp(db.url, shared), buildTestApp(db.url, shared)]);
    try {
      const codes: number[] = [];
      for (let i = 0; i < 12; i++) {
        const replica = i % 2 ? a : b;
        codes.push((await replica.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody(`rl-${i}`) })).statusCode);
      }
      // Ten across both replicas, then refused: the count is shared, not per process.
      expect(codes.slice(0, 10)).toEqual(Array(10).fill(201));
      const limited = await a.inject({ method: 'GET', url: '/v1/messages/rl-0', headers: asProducer });
      expect(limited.statusCode).toBe(429);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect(limited.json()).toMatchObject({ statusCode: 429, error: 'Too Many Requests' });
      expect(limited.json().message).toMatch(/^rate limit of 10 requests per minute for this token exceeded/);
      expect(codes.slice(10)).toEqual([429, 429]);
      // Another token has its own budget; probes are never limited.
      expect((await a.inject({ method: 'GET', url: '/v1/messages/rl-0', headers: asAdmin })).statusCode).toBe(200);
      expect((await a.inject({ url: '/healthz' })).statusCode).toBe(200);
      // Nothing refused was stored.
      expect((await a.inject({ method: 'GET', url: '/v1/messages/rl-11', headers: asAdmin })).statusCode).toBe(404);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('is skipped, not enforced as refusals, while Redis is unreachable', async () => {
    const app = await buildTestApp(db.url, { REDIS_URL: 'redis://127.0.0.1:9', HERALD_RATE_LIMIT_PER_MINUTE: '1', HERALD_ROLE: 'api' });
    try {
      for (let i = 0; i < 3; i++) expect((await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody(`rl-down-${i}`) })).statusCode).toBe(201);
    } finally {
      await app.close();
    }
  });
});

describe('overload', () => {
  it('under sustained event-loop lag sheds some requests with 503 + Retry-After, loses none it accepted, and recovers', async () => {
    const app = await buildTestApp(db.url, { HERALD_MAX_EVENT_LOOP_DELAY_MS: '100', HERALD_PRESSURE_SAMPLE_INTERVAL_MS: '50', HERALD_ROLE: 'api' });
    try {
      // More work than the process can take: the loop is blocked 150 ms out of every 160 ms for 3 s.
      const hog = setInterval(() => {
        const until = Date.now() + 150;
        while (Date.now() < until);
      }, 160);
      const results: Array<{ id: string; status: number; retryAfter?: string }> = [];
      const stopAt = Date.now() + 3_000;
      try {
        for (let i = 0; Date.now() < stopAt; i++) {
          const res = await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody(`load-${i}`) });
          results.push({ id: `load-${i}`, status: res.statusCode, retryAfter: res.headers['retry-after'] as string | undefined });
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        clearInterval(hog);
      }
      const shed = results.filter((r) => r.status === 503);
      const accepted = results.filter((r) => r.status === 201);
      expect(results.every((r) => r.status === 201 || r.status === 503), JSON.stringify(results.map((r) => r.status))).toBe(true);
      expect(shed.length).toBeGreaterThan(0);
      expect(shed.every((r) => r.retryAfter === '1')).toBe(true);
      expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
      // Recovers: once the lag is gone requests are accepted again.
      const deadline = Date.now() + 10_000;
      let after = 503;
      while (after === 503 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        after = (await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('after-load') })).statusCode;
      }
      expect(after).toBe(201);
      // Nothing accepted was lost, nothing shed was stored.
      for (const r of accepted) expect((await app.inject({ url: `/v1/messages/${r.id}`, headers: asProducer })).statusCode, r.id).toBe(200);
      for (const r of shed) expect((await app.inject({ url: `/v1/messages/${r.id}`, headers: asProducer })).statusCode, r.id).toBe(404);
      console.log(`[overload] ${results.length} requests under sustained lag: ${accepted.length} accepted, ${shed.length} shed with 503`);
    } finally {
      await app.close();
    }
  });
});
