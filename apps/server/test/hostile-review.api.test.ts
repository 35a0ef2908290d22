import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { asAdmin, asProducer, buildTestApp, createTestDatabase, prepareBody } from './helpers';
import { startWebhookSink, waitFor } from '@herald/test-support';

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let subscriptionId: string;

beforeAll(async () => {
  db = await createTestDatabase('hostile');
  app = await buildTestApp(db.url);
  const sub = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'h', topic: 'hostile.one', target: { type: 'webhook', url: 'http://127.0.0.1:9/hook' } } });
  subscriptionId = sub.json().id;
  const published = await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { ...prepareBody('hostile-1'), topic: 'hostile.one', confirm: true } });
  expect(published.statusCode, published.body).toBe(201);
});
afterAll(async () => {
  await app.close();
  await db.drop();
});

function expect400(res: { statusCode: number; body: string; json: () => { field?: string; message: string } }, field: string) {
  expect(res.statusCode, res.body).toBe(400);
  expect(res.json().field).toBe(field);
  expect(res.json().message).toContain(field);
}

describe('optional bodies are validated (a 500 or a silent acceptance before)', () => {
  it('refuses a graceMs that is not a whole number of milliseconds ≥ 0', async () => {
    for (const graceMs of ['abc', -1, 1.5]) {
      const res = await app.inject({ method: 'POST', url: `/v1/subscriptions/${subscriptionId}/rotate-secret`, headers: asAdmin, payload: { graceMs } });
      expect400(res, 'graceMs');
    }
  });

  it('refuses since/until that are not times, and an all that is not a boolean', async () => {
    expect400(await app.inject({ method: 'POST', url: `/v1/subscriptions/${subscriptionId}/redeliver`, headers: asAdmin, payload: { since: 'garbage' } }), 'since');
    expect400(await app.inject({ method: 'POST', url: `/v1/subscriptions/${subscriptionId}/redeliver`, headers: asAdmin, payload: { until: 7 } }), 'until');
    expect400(await app.inject({ method: 'POST', url: '/v1/messages/hostile-1/redeliver', headers: asAdmin, payload: { all: 'yes' } }), 'all');
    expect400(await app.inject({ method: 'POST', url: '/v1/messages/hostile-1/redeliver', headers: asAdmin, payload: { every: true } }), 'every');
  });

  it('refuses a literal null where the body is optional, which the fuzzer saw taken for no body', async () => {
    const routes = ['/v1/messages/hostile-1/redeliver', `/v1/subscriptions/${subscriptionId}/redeliver`, `/v1/subscriptions/${subscriptionId}/rotate-secret`];
    for (const url of routes) {
      const res = await app.inject({ method: 'POST', url, headers: { ...asAdmin, 'content-type': 'application/json' }, payload: 'null' });
      expect(res.statusCode, url).toBe(400);
      expect(res.json().message, url).toBe('body must be object (got null)');
    }
  });

  it('still accepts the bodies when they are absent or valid', async () => {
    expect((await app.inject({ method: 'POST', url: '/v1/messages/hostile-1/redeliver', headers: asAdmin })).statusCode).toBe(202);
    expect((await app.inject({ method: 'POST', url: '/v1/messages/hostile-1/redeliver', headers: asAdmin, payload: { all: true } })).statusCode).toBe(202);
    expect((await app.inject({ method: 'POST', url: `/v1/subscriptions/${subscriptionId}/redeliver`, headers: asAdmin, payload: { since: '2026-01-01T00:00:00Z' } })).statusCode).toBe(202);
  });
});

describe('times and numbers Herald cannot hold are refused (a 500 or a stored null before)', () => {
  it('answers 400 to a leap second, which no JavaScript date can hold', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/messages?createdBefore=2026-12-31T23:59:60Z', headers: asProducer });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().field).toBe('createdBefore');
    const body = await app.inject({ method: 'POST', url: `/v1/subscriptions/${subscriptionId}/redeliver`, headers: asAdmin, payload: { since: '2026-12-31T23:59:60Z' } });
    expect400(body, 'since');
  });

  it('answers 400 to a payload number beyond a double (1e400 would be stored as null)', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/messages',
      headers: { ...asProducer, 'content-type': 'application/json' },
      payload: '{"id":"huge-number","topic":"hostile.one","confirm":true,"payload":{"n":1e400}}',
    });
    expect400(res, 'payload');
    expect((await app.inject({ method: 'GET', url: '/v1/messages/huge-number', headers: asProducer })).statusCode).toBe(404);
  });
});

describe('the signing secret', () => {
  it('is not in a PATCH answer, only in create and rotate answers', async () => {
    const patched = await app.inject({ method: 'PATCH', url: `/v1/subscriptions/${subscriptionId}`, headers: asAdmin, payload: { name: 'x' } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json().name).toBe('x');
    expect(patched.body).not.toMatch(/whsec_|secret/i);
    const rotated = await app.inject({ method: 'POST', url: `/v1/subscriptions/${subscriptionId}/rotate-secret`, headers: asAdmin, payload: { graceMs: 0 } });
    expect(rotated.json().secret).toMatch(/^whsec_/);
  });
});

describe('delivery headers', () => {
  it("keeps the subscription's value when a message repeats its header in another letter case (the attacker's Authorization reached the consumer)", async () => {
    const sink = await startWebhookSink();
    try {
      const sub = await app.inject({
        method: 'POST',
        url: '/v1/subscriptions',
        headers: asAdmin,
        payload: { name: 'auth', topic: 'hostile.auth', target: { type: 'webhook', url: sink.url('/auth'), headers: { authorization: 'Bearer consumer-token' } } },
      });
      expect(sub.statusCode, sub.body).toBe(201);
      const sent = await app.inject({
        method: 'POST',
        url: '/v1/messages',
        headers: asProducer,
        payload: { id: 'hostile-auth', topic: 'hostile.auth', payload: {}, confirm: true, headers: { Authorization: 'Bearer attacker', 'X-Trace': 'kept' } },
      });
      expect(sent.statusCode, sent.body).toBe(201);
      await waitFor(async () => sink.hitsFor('hostile-auth').length > 0, 'delivered');
      const raw = sink.hitsFor('hostile-auth')[0]!.headers;
      expect(raw.authorization).toBe('Bearer consumer-token');
      expect(raw['x-trace']).toBe('kept');
    } finally {
      await sink.close();
    }
  });
});

describe('listing pages', () => {
  it('end early once their payloads pass 1 MiB, and the cursor walks every message once (52 MB answers before)', async () => {
    const big = 'x'.repeat(400_000);
    for (let i = 0; i < 3; i++) {
      const res = await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id: `big-${i}`, topic: 'hostile.big', payload: { big }, confirm: true } });
      expect(res.statusCode, res.body).toBe(201);
    }
    const seen: string[][] = [];
    let cursor: string | null = null;
    do {
      const res = await app.inject({ url: `/v1/messages?topic=hostile.big&limit=200${cursor ? `&cursor=${cursor}` : ''}`, headers: asProducer });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.body.length).toBeLessThan(1_100_000);
      const page = res.json() as { items: Array<{ id: string }>; nextCursor: string | null };
      seen.push(page.items.map((m) => m.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([['big-2', 'big-1'], ['big-0']]);
  });

  it('still carries up to `limit` small messages in one page', async () => {
    for (let i = 0; i < 5; i++) await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id: `small-${i}`, topic: 'hostile.small', payload: { i }, confirm: true } });
    const res = await app.inject({ url: '/v1/messages?topic=hostile.small&limit=200', headers: asProducer });
    const page = res.json() as { items: Array<{ id: string }>; nextCursor: string | null };
    expect(page.items.map((m) => m.id)).toEqual(['small-4', 'small-3', 'small-2', 'small-1', 'small-0']);
    expect(page.nextCursor).toBeNull();
  });
});

describe('smaller findings', () => {
  it('refuses a second spelling of a topic pattern, which counted apart against the per-pattern cap', async () => {
    for (const [topic, canonical] of [['capx.#.#', 'capx.#'], ['capx.#.*', 'capx.*.#']] as const) {
      const res = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'cap', topic, target: { type: 'rabbitmq', exchange: 'x' } } });
      expect400(res, 'topic');
      expect(res.json().message).toContain(`"${canonical}"`);
    }
    const patched = await app.inject({ method: 'PATCH', url: `/v1/subscriptions/${subscriptionId}`, headers: asAdmin, payload: { topic: 'hostile.#.#' } });
    expect400(patched, 'topic');
  });

  it('says why a payload with __proto__ is refused instead of calling it invalid JSON', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/messages',
      headers: { ...asProducer, 'content-type': 'application/json' },
      payload: '{"id":"proto","topic":"hostile.one","confirm":true,"payload":{"__proto__":{"x":1}}}',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/"__proto__".*prototype poisoning/);
    expect(res.json().message).not.toMatch(/not valid JSON/);
  });

  it('refuses subscription names with text-direction overrides or zero-width characters', async () => {
    for (const name of ['pay\u202Emoc.liame', 'a\u200Bb', '\u2066x\u2069', '\uFEFFx']) {
      const res = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name, topic: 'hostile.names', target: { type: 'rabbitmq', exchange: 'x' } } });
      expect400(res, 'name');
    }
    const ok = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'Coupons — zß水 ✓', topic: 'hostile.names', target: { type: 'rabbitmq', exchange: 'x' } } });
    expect(ok.statusCode, ok.body).toBe(201);
  });
});
