import { randomBytes } from 'node:crypto';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AMQP_URL, startAmqpConsumer, startWebhookSink, waitFor } from '@herald/test-support';
import { NAIVE_TABLE, startNaiveService, type NaiveService } from './naive.service';

const MYSQL_SERVER = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
// Named like the server tests' databases, so the run's leftover check covers this one too.
const name = `herald_t_${process.env.HERALD_TEST_RUN ?? 'local'}_naive${randomBytes(3).toString('hex')}`;

const TOKEN = 'naive-peer-test-token-0123456789';

describe('the naive peer of the benchmark', () => {
  let admin: Connection;
  let sink: Awaited<ReturnType<typeof startWebhookSink>>;
  let consumer: Awaited<ReturnType<typeof startAmqpConsumer>>;
  let service: NaiveService;
  let onFastify: NaiveService;

  const postTo = (on: NaiveService, path: string, body?: unknown, token?: string) =>
    fetch(`${on.url}${path}`, {
      method: 'POST',
      headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...(token !== undefined && { authorization: `Bearer ${token}` }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const post = (path: string, body?: unknown) => postTo(service, path, body);
  const statusOf = async (id: string, database = name) => {
    const [rows] = await admin.query<RowDataPacket[]>(`SELECT status FROM \`${database}\`.${NAIVE_TABLE} WHERE id = ?`, [id]);
    return rows[0]?.status as string | undefined;
  };

  beforeAll(async () => {
    admin = await createConnection(MYSQL_SERVER);
    await admin.query(`CREATE DATABASE \`${name}\``);
    sink = await startWebhookSink();
    consumer = await startAmqpConsumer(name);
    service = await startNaiveService({ databaseUrl: `${MYSQL_SERVER}/${name}`, webhookUrl: sink.url('/pc'), amqpUrl: AMQP_URL, exchange: name, idlePollMs: 20 });
    // A database of its own: two senders on one table would both send every row.
    await admin.query(`CREATE DATABASE \`${name}f\``);
    onFastify = await startNaiveService({ databaseUrl: `${MYSQL_SERVER}/${name}f`, webhookUrl: sink.url('/pc'), idlePollMs: 20, stack: 'fastify', token: TOKEN });
  });

  afterAll(async () => {
    await service?.close();
    await onFastify?.close();
    await consumer?.close();
    await sink?.close();
    await admin?.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await admin?.query(`DROP DATABASE IF EXISTS \`${name}f\``);
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

  it('on Herald\'s stack, refuses a request without its token and a body its schema rejects, and otherwise prepares, confirms and sends the same way', async () => {
    const id = `f-${randomBytes(4).toString('hex')}`;
    const body = { id, topic: 'bench.pc', payload: { n: 3 }, checkUrl: 'http://127.0.0.1:9/check' };
    expect((await postTo(onFastify, '/v1/messages', body)).status).toBe(401);
    expect((await postTo(onFastify, '/v1/messages', body, 'not-the-token')).status).toBe(401);
    const bad = await postTo(onFastify, '/v1/messages', { ...body, topic: 'bench..pc' }, TOKEN);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('topic');
    // Unknown fields are refused, as Herald refuses them, not silently dropped.
    expect((await postTo(onFastify, '/v1/messages', { ...body, extra: 1 }, TOKEN)).status).toBe(400);
    expect(await statusOf(id, `${name}f`)).toBeUndefined();
    // The process starter polls /readyz without a token.
    expect((await fetch(`${onFastify.url}/readyz`)).status).toBe(200);

    expect((await postTo(onFastify, '/v1/messages', body, TOKEN)).status).toBe(201);
    expect((await postTo(onFastify, '/v1/messages', body, TOKEN)).status).toBe(409);
    expect(await statusOf(id, `${name}f`)).toBe('prepared');
    const confirmed = await postTo(onFastify, `/v1/messages/${id}/confirm`, undefined, TOKEN);
    expect(confirmed.status).toBe(200);
    expect(await confirmed.json()).toEqual({ id, status: 'confirmed' });
    await waitFor(async () => (await statusOf(id, `${name}f`)) === 'delivered', `${id} delivered`);
    expect(sink.hitsFor(id)).toHaveLength(1);
    expect((await postTo(onFastify, `/v1/messages/${id}/confirm`, undefined, TOKEN)).status).toBe(404);

    // The longest id Herald takes (128 characters) is confirmed too.
    const long = `l${'x'.repeat(127)}`;
    expect((await postTo(onFastify, '/v1/messages', { ...body, id: long }, TOKEN)).status).toBe(201);
    expect((await postTo(onFastify, `/v1/messages/${long}/confirm`, undefined, TOKEN)).status).toBe(200);
  });
});
