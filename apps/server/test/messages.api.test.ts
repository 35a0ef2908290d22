import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { asAdmin, asProducer, buildTestApp, createTestDatabase, prepareBody } from './helpers';

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase('msg');
  app = await buildTestApp(db.url);
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

const prepare = (body: unknown, headers = asProducer) => app.inject({ method: 'POST', url: '/v1/messages', headers, payload: body as object });
const act = (id: string, action: 'confirm' | 'cancel', headers = asProducer) => app.inject({ method: 'POST', url: `/v1/messages/${id}/${action}`, headers });
const get = (id: string) => app.inject({ method: 'GET', url: `/v1/messages/${id}`, headers: asProducer });

describe('POST /v1/messages (prepare)', () => {
  it('stores a prepared message and answers 201 with it', async () => {
    const res = await prepare(prepareBody('p-1', { headers: { 'x-tenant': 'acme' }, checkAfterMs: 5000, maxChecks: 3, onChecksExhausted: 'hold', delayMs: 250 }));
    expect(res.statusCode).toBe(201);
    const m = res.json();
    expect(m).toMatchObject({
      id: 'p-1', topic: 'order.paid', key: 'key-p-1', status: 'prepared', headers: { 'x-tenant': 'acme' },
      checkAfterMs: 5000, checkIntervalMs: 10000, maxChecks: 3, onChecksExhausted: 'hold', delayMs: 250,
      checks: 0, confirmedAt: null, cancelledAt: null, deliveries: [],
    });
    expect(Date.parse(m.nextCheckAt) - Date.parse(m.createdAt)).toBe(5000);
    expect(m.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect((await get('p-1')).json()).toEqual({ ...m, checkAttempts: [] });
  });

  it('fills the service defaults: first check after 30 s, 15 checks, rollback', async () => {
    const m = (await prepare(prepareBody('p-defaults'))).json();
    expect(m).toMatchObject({ checkAfterMs: 30000, maxChecks: 15, onChecksExhausted: 'rollback', delayMs: 0, key: 'key-p-defaults' });
  });

  it('generates an id when the producer sends none', async () => {
    const { id: _omit, ...body } = prepareBody('unused');
    const res = await prepare(body);
    expect(res.statusCode).toBe(201);
    expect(res.json().id).toMatch(/^[A-Za-z0-9_:-]{1,128}$/);
  });

  it('answers 200 with the stored message when the same id and content come again (a retried prepare)', async () => {
    const first = await prepare(prepareBody('p-idem'));
    const again = await prepare({ ...prepareBody('p-idem'), payload: { items: [{ qty: 2, sku: 'a' }], amount: 4200, orderId: 'p-idem' } });
    expect(first.statusCode).toBe(201);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(first.json());
  });

  it('answers 409 for the same id with different content, and keeps the stored message unchanged', async () => {
    const first = (await prepare(prepareBody('p-conflict'))).json();
    for (const change of [{ payload: { orderId: 'other' } }, { topic: 'order.refunded' }, { key: 'k2' }, { confirm: true }, { maxChecks: 2 }]) {
      const res = await prepare(prepareBody('p-conflict', change));
      expect(res.statusCode, JSON.stringify(change)).toBe(409);
      expect(res.json()).toMatchObject({ statusCode: 409, error: 'Conflict', field: 'id' });
    }
    expect((await get('p-conflict')).json()).toEqual({ ...first, checkAttempts: [] });
  });

  it('refuses header maps too large to store (each value valid, the whole too big) with a 400, not a 500', async () => {
    const tabs = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`x-h${i}`, '\t'.repeat(1024)]));
    const res = await prepare(prepareBody('p-big-headers', { headers: tabs }));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ field: 'headers', message: 'body.headers must not exceed 16384 bytes in all' });
    expect((await get('p-big-headers')).statusCode).toBe(404);
  });

  it('treats {} headers and confirm: false as their absence when comparing a retried prepare', async () => {
    const first = await prepare(prepareBody('p-normal'));
    expect(first.statusCode).toBe(201);
    expect((await prepare(prepareBody('p-normal', { headers: {}, confirm: false }))).statusCode).toBe(200);
  });

  it('lets exactly one of many concurrent prepares with one id create it', async () => {
    const results = await Promise.all(Array.from({ length: 30 }, () => prepare(prepareBody('p-race'))));
    expect(results.filter((r) => r.statusCode === 201)).toHaveLength(1);
    expect(results.filter((r) => r.statusCode === 200)).toHaveLength(29);
  });

  it('publishes directly with confirm: true, without a checkUrl and without a check schedule', async () => {
    const res = await prepare({ id: 'direct-1', topic: 'order.paid', payload: [1, 2, 3], confirm: true });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ status: 'confirmed', checkUrl: null, nextCheckAt: null, payload: [1, 2, 3] });
    expect(res.json().confirmedAt).toBe(res.json().createdAt);
  });

  it('accepts any JSON payload, including scalars and null', async () => {
    for (const [i, payload] of ['text', 42, true, null, { deep: { er: [{}] } }].entries()) {
      const res = await prepare({ id: `any-${i}`, topic: 'any.json', payload, confirm: true });
      expect(res.statusCode).toBe(201);
      expect((await get(`any-${i}`)).json().payload).toEqual(payload);
    }
  });
});

describe('POST /v1/messages/{id}/confirm and /cancel', () => {
  it('confirms a prepared message, idempotently', async () => {
    await prepare(prepareBody('c-1'));
    const first = await act('c-1', 'confirm');
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ status: 'confirmed', nextCheckAt: null });
    expect(first.json().confirmedAt).not.toBeNull();
    const second = await act('c-1', 'confirm');
    expect(second.statusCode).toBe(200);
    expect(second.json()).toEqual(first.json());
  });

  it('cancels a prepared message, idempotently', async () => {
    await prepare(prepareBody('x-1'));
    const first = await act('x-1', 'cancel');
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ status: 'cancelled', nextCheckAt: null });
    expect((await act('x-1', 'cancel')).json()).toEqual(first.json());
  });

  it('refuses to cancel a confirmed message (409) and leaves it confirmed', async () => {
    await prepare(prepareBody('c-2'));
    await act('c-2', 'confirm');
    const res = await act('c-2', 'cancel');
    expect(res.statusCode).toBe(409);
    expect(res.json().message).toBe('message c-2 is confirmed; it cannot be cancelled');
    expect((await get('c-2')).json().status).toBe('confirmed');
  });

  it('refuses to confirm a cancelled message (409) and leaves it cancelled', async () => {
    await prepare(prepareBody('x-2'));
    await act('x-2', 'cancel');
    const res = await act('x-2', 'confirm');
    expect(res.statusCode).toBe(409);
    expect((await get('x-2')).json().status).toBe('cancelled');
  });

  it('refuses to cancel a directly published message', async () => {
    await prepare({ id: 'direct-2', topic: 't', payload: {}, confirm: true });
    expect((await act('direct-2', 'cancel')).statusCode).toBe(409);
  });

  it('answers 404 for an unknown id', async () => {
    for (const action of ['confirm', 'cancel'] as const) {
      const res = await act('no-such-message', action);
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual({ statusCode: 404, error: 'Not Found', message: 'message no-such-message not found' });
    }
  });

  it('resolves an unresolved message either way', async () => {
    await prepare(prepareBody('u-1'));
    await prepare(prepareBody('u-2'));
    await app.mysql.query("UPDATE messages SET status = 'unresolved', next_check_at = NULL WHERE id IN ('u-1', 'u-2')");
    expect((await act('u-1', 'confirm')).json().status).toBe('confirmed');
    expect((await act('u-2', 'cancel')).json().status).toBe('cancelled');
    expect((await act('u-1', 'cancel')).statusCode).toBe(409);
  });

  it('accepts an empty JSON body and an empty object', async () => {
    await prepare(prepareBody('c-body'));
    const res = await app.inject({ method: 'POST', url: '/v1/messages/c-body/confirm', headers: { ...asProducer, 'content-type': 'application/json' }, payload: '' });
    expect(res.statusCode).toBe(200);
    const again = await app.inject({ method: 'POST', url: '/v1/messages/c-body/confirm', headers: asProducer, payload: {} });
    expect(again.statusCode).toBe(200);
  });

  it('under 60 concurrent confirms and cancels on one id, exactly one outcome wins', async () => {
    for (let round = 0; round < 3; round++) {
      const id = `race-${round}`;
      await prepare(prepareBody(id));
      const actions = Array.from({ length: 60 }, (_, i) => (i % 2 === round % 2 ? 'confirm' : 'cancel') as 'confirm' | 'cancel');
      const results = await Promise.all(actions.map((a) => act(id, a)));
      const final = (await get(id)).json().status;
      expect(['confirmed', 'cancelled']).toContain(final);
      const winner = final === 'confirmed' ? 'confirm' : 'cancel';
      results.forEach((r, i) => expect(r.statusCode).toBe(actions[i] === winner ? 200 : 409));
      // Every winning response shows the same committed state; no loser saw a half-applied one.
      const stamps = new Set(results.filter((r) => r.statusCode === 200).map((r) => r.json().updatedAt));
      expect(stamps.size).toBe(1);
    }
  });

  it('works for an id of the maximum length (128) in the path', async () => {
    const id = 'a'.repeat(128);
    expect((await prepare(prepareBody(id))).statusCode).toBe(201);
    expect((await act(id, 'confirm')).statusCode).toBe(200);
  });
});

describe('GET /v1/messages', () => {
  beforeAll(async () => {
    for (let i = 0; i < 12; i++) {
      await prepare({ id: `l-${i}`, topic: i % 2 ? 'list.odd' : 'list.even', payload: i, checkUrl: 'http://127.0.0.1:9/c' });
      if (i % 3 === 0) await act(`l-${i}`, 'confirm');
    }
  });

  const list = (query: string) => app.inject({ method: 'GET', url: `/v1/messages?${query}`, headers: asProducer });

  it('filters by topic, newest first', async () => {
    const res = await list('topic=list.even');
    expect(res.statusCode).toBe(200);
    expect(res.json().items.map((m: { id: string }) => m.id)).toEqual(['l-10', 'l-8', 'l-6', 'l-4', 'l-2', 'l-0']);
    expect(res.json().nextCursor).toBeNull();
  });

  it('filters by status and topic together', async () => {
    const res = await list('topic=list.even&status=confirmed');
    expect(res.json().items.map((m: { id: string }) => m.id)).toEqual(['l-6', 'l-0']);
    const prepared = await list('topic=list.odd&status=prepared');
    expect(prepared.json().items.map((m: { id: string }) => m.id)).toEqual(['l-11', 'l-7', 'l-5', 'l-1']);
  });

  it('pages with an opaque cursor, without gaps or repeats', async () => {
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await list(`topic=list.odd&limit=4${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.statusCode).toBe(200);
      ids.push(...res.json().items.map((m: { id: string }) => m.id));
      cursor = res.json().nextCursor;
    } while (cursor);
    expect(ids).toEqual(['l-11', 'l-9', 'l-7', 'l-5', 'l-3', 'l-1']);
  });

  it('refuses a cursor it did not issue, and bad filters, naming the field', async () => {
    expect((await list('cursor=bogus')).json()).toMatchObject({ statusCode: 400, field: 'cursor' });
    expect((await list('status=shipped')).json()).toMatchObject({ statusCode: 400, field: 'status' });
    expect((await list('limit=0')).json()).toMatchObject({ statusCode: 400, field: 'limit' });
    expect((await list('limit=201')).json()).toMatchObject({ statusCode: 400, field: 'limit' });
    expect((await list('topic=bad..topic')).json()).toMatchObject({ statusCode: 400, field: 'topic' });
    expect((await list('colour=red')).json()).toMatchObject({ statusCode: 400, field: 'colour' });
  });
});

describe('roles', () => {
  it('lets an admin token use producer routes', async () => {
    expect((await prepare(prepareBody('admin-made'), asAdmin)).statusCode).toBe(201);
  });
});
