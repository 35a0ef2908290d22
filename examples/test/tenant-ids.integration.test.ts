import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type ChannelModel } from 'amqplib';
import { createConnection, createPool, type Pool } from 'mysql2/promise';
import { consumeOnce, ensureInboxTable, mysql2Transactions, processOnce, type AmqpEvent } from '@herald/client/consumer';

// Herald sends `<tenant>/<id>` as the consumer id of a message of any tenant but `default`; the
// inbox must take it and tell the same id of two tenants apart.
const SERVER = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const AMQP_URL = process.env.HERALD_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const name = `herald_t_inbox_${randomBytes(4).toString('hex')}`;
let pool: Pool;
let amqp: ChannelModel;

beforeAll(async () => {
  const c = await createConnection(SERVER);
  await c.query(`CREATE DATABASE \`${name}\``);
  await c.end();
  pool = createPool({ uri: `${SERVER}/${name}`, connectionLimit: 4 });
  await ensureInboxTable(pool);
  amqp = await connect(AMQP_URL);
});
afterAll(async () => {
  await amqp?.close();
  await pool?.end();
  const c = await createConnection(SERVER);
  await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await c.end();
});

describe('consumer ids across tenants', () => {
  it('processOnce takes <tenant>/<id> ids (also the longest) and keeps the same id of two tenants apart', async () => {
    const opts = { transactions: mysql2Transactions(pool), consumer: 'tenants' };
    const id = 'order:42';
    const longest = `${'t'.repeat(64)}/${'i'.repeat(128)}`;
    for (const each of [id, `team-a/${id}`, `team-b/${id}`, longest]) expect(await processOnce(opts, each, async () => each)).toEqual({ duplicate: false, value: each });
    for (const each of [id, `team-a/${id}`, `team-b/${id}`, longest]) expect(await processOnce(opts, each, async () => each)).toEqual({ duplicate: true });
    // Nothing else passes into SQL.
    for (const bad of ['Team/x', 'a/b/c', "t/x'--", `${'t'.repeat(65)}/x`]) await expect(processOnce(opts, bad, async () => 1)).rejects.toThrow(TypeError);
  });

  it('consumeOnce processes the same id of two tenants once each, with each tenant, and a redelivery of either as a duplicate', async () => {
    const channel = await amqp.createChannel();
    const queue = (await channel.assertQueue('', { exclusive: true })).queue;
    const seen: AmqpEvent[] = [];
    const duplicates: string[] = [];
    await consumeOnce(channel, queue, { transactions: mysql2Transactions(pool), consumer: 'amqp-tenants', retryDelayMs: 20, onDuplicate: (e) => duplicates.push(e.id) }, async (_tx, event) => {
      seen.push(event);
    });
    const id = `m-${randomBytes(3).toString('hex')}`;
    const send = (messageId: string, tenant: string) => channel.sendToQueue(queue, Buffer.from('{"n":1}'), { messageId, headers: { 'herald-tenant': tenant, 'herald-topic': 't' } });
    send(`team-a/${id}`, 'team-a');
    send(`team-b/${id}`, 'team-b');
    send(`team-a/${id}`, 'team-a');
    const deadline = Date.now() + 10_000;
    while ((seen.length < 2 || duplicates.length < 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(seen.map((e) => [e.id, e.tenant]).sort()).toEqual([[`team-a/${id}`, 'team-a'], [`team-b/${id}`, 'team-b']]);
    expect(duplicates).toEqual([`team-a/${id}`]);
    await channel.close();
  });
});
