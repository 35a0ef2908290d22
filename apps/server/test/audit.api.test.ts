import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app';
import { parseConfig } from '../src/config';
import { asAdmin, asProducer, createTestDatabase, prepareBody, testEnv } from './helpers';

// The API behind the console: the audit log of operator actions, the filters and counts the
// console needs, and the static console itself.

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sql: Connection;
let consoleDir: string;

const audit = async () => (await sql.query<RowDataPacket[]>('SELECT actor, action, target_type, target_id, reason, outcome FROM audit_log ORDER BY id'))[0];

beforeAll(async () => {
  db = await createTestDatabase('audit');
  sql = await createConnection(db.url);
  consoleDir = await mkdtemp(join(tmpdir(), 'herald-console-static-'));
  await writeFile(join(consoleDir, 'index.html'), '<!doctype html><title>Herald console</title>');
  app = await buildApp(parseConfig(testEnv(db.url)), { logger: false, worker: false, consoleDir });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await sql?.end();
  await db?.drop();
  await rm(consoleDir, { recursive: true, force: true });
});

describe('the audit log', () => {
  it('keeps producers’ own confirms and cancels out, and still takes them without a body (backward compatible)', async () => {
    await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('p-1') });
    await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('p-2') });
    expect((await app.inject({ method: 'POST', url: '/v1/messages/p-1/confirm', headers: asProducer })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/v1/messages/p-2/cancel', headers: { ...asProducer, 'content-type': 'application/json' }, payload: '{}' })).statusCode).toBe(200);
    expect(await audit()).toEqual([]);
  });

  it('records an admin’s confirm with its reason and outcome, and a refused one with why', async () => {
    await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('a-1') });
    const confirmed = await app.inject({ method: 'POST', url: '/v1/messages/a-1/confirm', headers: asAdmin, payload: { reason: 'verified by hand' } });
    expect(confirmed.statusCode).toBe(200);
    expect(confirmed.json().status).toBe('confirmed');
    expect((await app.inject({ method: 'POST', url: '/v1/messages/a-1/cancel', headers: asAdmin, payload: { reason: 'too late' } })).statusCode).toBe(409);
    expect((await app.inject({ method: 'POST', url: '/v1/messages/nope/cancel', headers: asAdmin })).statusCode).toBe(404);
    expect(await audit()).toEqual([
      { actor: 'ops', action: 'message.confirm', target_type: 'message', target_id: 'a-1', reason: 'verified by hand', outcome: 'prepared → confirmed' },
      { actor: 'ops', action: 'message.cancel', target_type: 'message', target_id: 'a-1', reason: 'too late', outcome: 'refused: message is confirmed' },
      { actor: 'ops', action: 'message.cancel', target_type: 'message', target_id: 'nope', reason: null, outcome: 'not found' },
    ]);
  });

  it('rejects a reason that breaks its schema with 400 naming the field, and records nothing', async () => {
    for (const reason of ['x'.repeat(501), '', 5, 'line\nbreak']) {
      const res = await app.inject({ method: 'POST', url: '/v1/messages/a-1/confirm', headers: asAdmin, payload: { reason } });
      expect(res.statusCode, JSON.stringify(reason)).toBe(400);
      expect(res.json().field).toBe('reason');
    }
    const redeliver = await app.inject({ method: 'POST', url: '/v1/messages/a-1/redeliver', headers: asAdmin, payload: { all: 'yes' } });
    expect(redeliver.statusCode).toBe(400);
    expect(await audit()).toHaveLength(3);
  });

  it('is read newest first, a page at a time, by admins only', async () => {
    const first = await app.inject({ url: '/v1/audit?limit=2', headers: asAdmin });
    expect(first.statusCode).toBe(200);
    expect(first.json().items.map((e: { targetId: string; action: string }) => `${e.action} ${e.targetId}`)).toEqual(['message.cancel nope', 'message.cancel a-1']);
    const second = await app.inject({ url: `/v1/audit?limit=2&cursor=${first.json().nextCursor}`, headers: asAdmin });
    expect(second.json()).toMatchObject({ items: [{ action: 'message.confirm', targetId: 'a-1' }], nextCursor: null });
    const forMessage = await app.inject({ url: '/v1/audit?targetType=message&targetId=nope', headers: asAdmin });
    expect(forMessage.json().items).toHaveLength(1);
    expect((await app.inject({ url: '/v1/audit' })).statusCode).toBe(401);
    expect((await app.inject({ url: '/v1/audit', headers: asProducer })).statusCode).toBe(403);
    expect((await app.inject({ url: '/v1/audit?cursor=bogus', headers: asAdmin })).statusCode).toBe(400);
    // A target id outside the id alphabet (here a 4-byte character) is refused by name, never sent to MySQL.
    const emoji = await app.inject({ url: `/v1/audit?targetType=message&targetId=${encodeURIComponent('🚀')}`, headers: asAdmin });
    expect(emoji.statusCode).toBe(400);
    expect(emoji.json().message).toContain('targetId');
  });
});

describe('what the console reads', () => {
  it('finds messages by exact key and creation time range', async () => {
    const cut = new Date();
    await new Promise((r) => setTimeout(r, 5));
    await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('k-1', { key: 'order-77' }) });
    await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('k-2', { key: 'order-78' }) });
    const byKey = await app.inject({ url: '/v1/messages?key=order-77', headers: asAdmin });
    expect(byKey.json().items.map((m: { id: string }) => m.id)).toEqual(['k-1']);
    const after = await app.inject({ url: `/v1/messages?createdAfter=${cut.toISOString()}`, headers: asAdmin });
    expect(after.json().items.map((m: { id: string }) => m.id)).toEqual(['k-2', 'k-1']);
    const before = await app.inject({ url: `/v1/messages?createdBefore=${cut.toISOString()}&key=order-77`, headers: asAdmin });
    expect(before.json().items).toEqual([]);
  });

  it('reads keys and the last hour through indexes, not table scans', async () => {
    const plan = async (q: string) => (await sql.query<RowDataPacket[]>(`EXPLAIN ${q}`))[0][0] as { key: string | null; type: string };
    expect((await plan("SELECT * FROM messages WHERE message_key = 'x' ORDER BY seq DESC LIMIT 51")).key).toBe('ix_messages_key_seq');
    expect((await plan('SELECT COUNT(*) FROM messages WHERE created_at >= UTC_TIMESTAMP() - INTERVAL 1 HOUR')).key).toBe('ix_messages_created');
    expect((await plan('SELECT COUNT(*) FROM messages WHERE confirmed_at >= UTC_TIMESTAMP() - INTERVAL 1 HOUR')).key).toBe('ix_messages_confirmed');
    expect((await plan('SELECT subscription_id, COUNT(*) FROM deliveries WHERE delivered_at >= UTC_TIMESTAMP() - INTERVAL 1 HOUR GROUP BY subscription_id')).key).toBe('ix_deliveries_delivered');
  });

  it('answers per-minute rates of the last hour', async () => {
    const res = await app.inject({ url: '/v1/stats/rates', headers: asAdmin });
    expect(res.statusCode).toBe(200);
    const rates = res.json();
    expect(rates.minutes).toHaveLength(60);
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    expect(sum(rates.created)).toBe(5);
    expect(sum(rates.confirmed)).toBe(2);
    expect(sum(rates.delivered)).toBe(0);
    expect(Date.parse(rates.minutes[59])).toBeLessThanOrEqual(Date.now());
    expect((await app.inject({ url: '/v1/stats/rates', headers: asProducer })).statusCode).toBe(403);
  });

  it('counts a subscription’s dead deliveries in a range without changing anything', async () => {
    const sub = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 's', topic: 'order.paid', target: { type: 'rabbitmq', exchange: 'x' } } });
    const id = sub.json().id as string;
    await sql.query(
      // Deliveries name their message by seq; these two stand for messages 1001 and 1002.
      "INSERT INTO deliveries (message_seq, message_id, subscription_id, target_type, status, created_at, updated_at, dead_at) VALUES (1001, 'k-1', ?, 'rabbitmq', 'dead', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), '2026-01-01 10:00:00'), (1002, 'k-2', ?, 'rabbitmq', 'dead', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), '2026-01-02 10:00:00')",
      [id, id],
    );
    const count = (q: string) => app.inject({ url: `/v1/subscriptions/${id}/dead-deliveries/count${q}`, headers: asAdmin });
    expect((await count('')).json()).toEqual({ dead: 2 });
    expect((await count('?since=2026-01-02T00:00:00.000Z')).json()).toEqual({ dead: 1 });
    expect((await count('?until=2026-01-02T00:00:00.000Z')).json()).toEqual({ dead: 1 });
    expect((await app.inject({ url: '/v1/subscriptions/sub_0123456789abcdef0123/dead-deliveries/count', headers: asAdmin })).statusCode).toBe(404);
    const health = (await app.inject({ url: '/v1/stats/subscriptions?windowMs=604800000', headers: asAdmin })).json();
    expect(health.items).toEqual([expect.objectContaining({ subscriptionId: id })]);
  });

  it('says who is signed in', async () => {
    expect((await app.inject({ url: '/v1/me', headers: asAdmin })).json()).toEqual({ name: 'ops', role: 'admin' });
    expect((await app.inject({ url: '/v1/me', headers: asProducer })).json()).toEqual({ name: 'default', role: 'producer' });
    expect((await app.inject({ url: '/v1/me' })).statusCode).toBe(401);
  });
});

describe('/console', () => {
  it('serves the console without a token, under a CSP that allows this origin only', async () => {
    const res = await app.inject({ url: '/console/' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('Herald console');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/https?:|\*/);
    expect((await app.inject({ url: '/console' })).headers.location).toBe('/console/');
    expect((await app.inject({ url: '/console/missing.js' })).statusCode).toBe(404);
  });
});
