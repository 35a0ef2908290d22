import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { asAdmin, asProducer, buildTestApp, createTestDatabase, metricValue, MYSQL_SERVER, prepareBody } from './helpers';
import { startWebhookSink, waitFor } from '@herald/test-support';

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sql: Connection;
let sink: Awaited<ReturnType<typeof startWebhookSink>>;
let failing: Awaited<ReturnType<typeof startWebhookSink>>;

const RETENTION_MS = 1_500;

beforeAll(async () => {
  db = await createTestDatabase('retention');
  sql = await createConnection(`${MYSQL_SERVER}/${db.name}`);
  sink = await startWebhookSink();
  failing = await startWebhookSink((_h, res) => void res.writeHead(500).end('no'));
  app = await buildTestApp(db.url, { HERALD_RETENTION_DELIVERED_MS: String(RETENTION_MS), HERALD_RETENTION_CANCELLED_MS: String(RETENTION_MS), HERALD_PURGE_INTERVAL_MS: '200' });
  const subscribe = async (topic: string, url: string, extra: Record<string, unknown> = {}) => {
    const res = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: topic, topic, target: { type: 'webhook', url }, ...extra } });
    expect(res.statusCode, res.body).toBe(201);
  };
  await subscribe('ret.ok', sink.url());
  // Retried far apart: its message stays confirmed, with a pending delivery, for the whole test.
  await subscribe('ret.slow', failing.url(), { maxAttempts: 10, backoff: { initialMs: 600_000, maxMs: 600_000 } });
});
afterAll(async () => {
  await app?.close();
  await sink?.close();
  await failing?.close();
  await sql?.end();
  await db?.drop();
});

const get = (id: string) => app.inject({ url: `/v1/messages/${id}`, headers: asProducer });

async function rowsAbout(id: string): Promise<number[]> {
  const one = async (q: string) => Number((await sql.query<RowDataPacket[]>(q, [id]))[0][0]?.n);
  return [
    await one('SELECT COUNT(*) AS n FROM messages WHERE id = ?'),
    await one('SELECT COUNT(*) AS n FROM deliveries WHERE message_id = ?'),
    await one('SELECT COUNT(*) AS n FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.message_id = ?'),
    await one('SELECT COUNT(*) AS n FROM check_attempts WHERE message_id = ?'),
  ];
}

describe('retention', () => {
  it('purges delivered and cancelled messages after their retention, keeps the rest, and frees their ids (guards against unbounded storage and over-eager purging)', async () => {
    const publish = (id: string, topic: string) => app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { ...prepareBody(id), topic, confirm: true, checkUrl: undefined } });
    expect((await publish('ret-delivered', 'ret.ok')).statusCode).toBe(201);
    expect((await publish('ret-confirmed', 'ret.slow')).statusCode).toBe(201);
    expect((await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('ret-cancelled', { checkAfterMs: 600_000 }) })).statusCode).toBe(201);
    expect((await app.inject({ method: 'POST', url: '/v1/messages/ret-cancelled/cancel', headers: asProducer })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('ret-prepared', { checkAfterMs: 600_000 }) })).statusCode).toBe(201);

    await waitFor(async () => (await get('ret-delivered')).json().status === 'delivered', 'the delivery');
    expect(await rowsAbout('ret-delivered')).toEqual([1, 1, 1, 0]);
    // Not before its retention: still there just after delivery.
    expect((await get('ret-delivered')).statusCode).toBe(200);
    await waitFor(async () => (await get('ret-delivered')).statusCode === 404 && (await get('ret-cancelled')).statusCode === 404, 'the purge');
    expect(await rowsAbout('ret-delivered')).toEqual([0, 0, 0, 0]);
    expect(await rowsAbout('ret-cancelled')).toEqual([0, 0, 0, 0]);

    // A further run later: the prepared message and the one still sending are kept.
    const runs = async () => metricValue((await app.inject({ url: '/metrics' })).body, 'herald_purge_last_run_timestamp_seconds');
    const after = await runs();
    await waitFor(async () => (await runs()) > after + RETENTION_MS / 1000, 'purge runs past the retention');
    expect((await get('ret-prepared')).json()).toMatchObject({ status: 'prepared' });
    expect((await get('ret-confirmed')).json()).toMatchObject({ status: 'confirmed' });
    expect((await rowsAbout('ret-confirmed'))[1]).toBe(1);

    const metrics = (await app.inject({ url: '/metrics' })).body;
    expect(metricValue(metrics, 'herald_purged_rows_total{table="messages"}')).toBe(2);
    expect(metricValue(metrics, 'herald_purged_rows_total{table="delivery_attempts"}')).toBe(1);
    expect(metricValue(metrics, 'herald_purge_lag_seconds')).toBe(0);

    // The id is free again: the same id and content make a new message (201), not a replay (200).
    const again = await publish('ret-delivered', 'ret.ok');
    expect(again.statusCode).toBe(201);
    await waitFor(async () => (await get('ret-delivered')).json().status !== 'confirmed', 'the new message delivered');
  });
});

describe('GET /v1/stats', () => {
  it('answers counts, the oldest prepared message, table sizes and the purge state to an admin', async () => {
    const res = await app.inject({ url: '/v1/stats', headers: asAdmin });
    expect(res.statusCode, res.body).toBe(200);
    const stats = res.json();
    expect(stats.messages).toMatchObject({ prepared: 1, confirmed: 1, cancelled: 0, unresolved: 0, failed: 0 });
    expect(stats.deliveries).toMatchObject({ pending: 1, dead: 0 });
    expect(stats.countsCappedAt).toBe(100_000);
    expect(stats.oldestPrepared).toMatchObject({ id: 'ret-prepared', createdAt: expect.any(String) });
    expect(stats.oldestPrepared.ageMs).toBeGreaterThan(0);
    expect(stats.tableSizesAreEstimates).toBe(true);
    expect(stats.tables.map((t: { name: string }) => t.name)).toEqual(['messages', 'deliveries', 'delivery_attempts', 'check_attempts', 'subscriptions']);
    for (const t of stats.tables) expect(t.dataBytes).toBeGreaterThan(0);
    expect(stats.purge).toMatchObject({ lastRunAt: expect.any(String), lagMs: 0, retentionMs: { delivered: RETENTION_MS, cancelled: RETENTION_MS, failed: 0 } });
  });

  it('is refused to producers (403) and without a token (401)', async () => {
    expect((await app.inject({ url: '/v1/stats', headers: asProducer })).statusCode).toBe(403);
    expect((await app.inject({ url: '/v1/stats' })).statusCode).toBe(401);
  });
});
