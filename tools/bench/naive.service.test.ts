import { randomBytes } from 'node:crypto';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AMQP_URL, startAmqpConsumer, startWebhookSink, waitFor } from '@herald/test-support';
import { NAIVE_TABLE, startNaiveService, type NaiveService } from './naive.service';

const MYSQL_SERVER = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
// Named like the server tests' databases, so the run's leftover check covers this one too.
const name = `herald_t_${process.env.HERALD_TEST_RUN ?? 'local'}_naive${randomBytes(3).toString('hex')}`;

describe('the naive peer of the benchmark', () => {
  let admin: Connection;
  let sink: Awaited<ReturnType<typeof startWebhookSink>>;
  let consumer: Awaited<ReturnType<typeof startAmqpConsumer>>;
  let service: NaiveService;

  const post = (path: string, body?: unknown) =>
    fetch(`${service.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const statusOf = async (id: string) => {
    const [rows] = await admin.query<RowDataPacket[]>(`SELECT status FROM \`${name}\`.${NAIVE_TABLE} WHERE id = ?`, [id]);
    return rows[0]?.status as string | undefined;
  };

  beforeAll(async () => {
    admin = await createConnection(MYSQL_SERVER);
    await admin.query(`CREATE DATABASE \`${name}\``);
    sink = await startWebhookSink();
    consumer = await startAmqpConsumer(name);
    service = await startNaiveService({ databaseUrl: `${MYSQL_SERVER}/${name}`, webhookUrl: sink.url('/pc'), amqpUrl: AMQP_URL, exchange: name, idlePollMs: 20 });
  });

  afterAll(async () => {
    await service?.close();
    await consumer?.close();
    await sink?.close();
    await admin?.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await admin?.end();
  });

  it('sends a message only once it is confirmed, once, and records it delivered — so its pairs/s count what reached the endpoint', async () => {
    const id = `m-${randomBytes(4).toString('hex')}`;
    expect((await post('/v1/messages', { id, topic: 'bench.pc', payload: { n: 1 }, checkUrl: 'http://127.0.0.1:9/check' })).status).toBe(201);
    expect((await post('/v1/messages', { id, topic: 'bench.pc', payload: { n: 1 } })).status).toBe(409);
    await new Promise((r) => setTimeout(r, 100));
    expect(sink.hitsFor(id)).toHaveLength(0);
    expect(await statusOf(id)).toBe('prepared');

    expect((await post(`/v1/messages/${id}/confirm`)).status).toBe(200);
    await waitFor(async () => (await statusOf(id)) === 'delivered', `${id} delivered`);
    const hits = sink.hitsFor(id);
    expect(hits).toHaveLength(1);
    expect(JSON.parse(hits[0]?.body ?? '')).toEqual({ n: 1 });
    expect((await post(`/v1/messages/${id}/confirm`)).status).toBe(404);
    expect((await post('/v1/messages', { topic: 'bench.pc', payload: {} })).status).toBe(400);
  });

  it('answers a direct publish after the broker confirmed it, and the consumer gets it under its id', async () => {
    const id = `d-${randomBytes(4).toString('hex')}`;
    expect((await post('/v1/messages', { id, topic: 'bench.amqp', payload: { n: 2 }, confirm: true })).status).toBe(201);
    expect(await statusOf(id)).toBe('delivered');
    const msg = await waitFor(() => consumer.received.find((m) => m.properties.messageId === id), `${id} consumed`);
    expect(JSON.parse(msg.content.toString())).toEqual({ n: 2 });
    // Direct messages never go to the webhook sender.
    expect(sink.hitsFor(id)).toHaveLength(0);
  });
});
