import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type ChannelModel } from 'amqplib';
import Fastify, { type FastifyInstance } from 'fastify';
import { drizzle } from 'drizzle-orm/mysql2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldClient, type HeraldMessage } from '@herald/client';
import {
  BarrierLostError,
  CommitOutcomeUnknownError,
  HeraldBarrier,
  answerFromBarrier,
  createCheckHandler,
  drizzleTransactions,
  ensureBarrierTable,
  heraldCheckPlugin,
  mysql2Transactions,
  type SqlConnection,
  type TransactionRunner,
} from '@herald/client/barrier';
import { consumeOnce, createWebhookHandler, ensureInboxTable, processOnce } from '@herald/client/consumer';
import { AMQP_URL, createDatabase, startHerald, waitFor, type RunningHerald } from '../shared/herald.process';

// The SDK against the real Herald process, real MariaDB, Redis and RabbitMQ, and real HTTP servers.
let herald: RunningHerald;
let orders: Awaited<ReturnType<typeof createDatabase>>;
let coupons: Awaited<ReturnType<typeof createDatabase>>;
let producerClient: HeraldClient;
let adminClient: HeraldClient;
let checkServer: Server;
let checkUrl: string;
let webhookServer: Server;
let fastifyApp: FastifyInstance;
let amqp: ChannelModel;
const checkCalls: string[] = [];
/** Runs before the check handler answers a given message (to hold a check while a test acts). */
const beforeCheck = new Map<string, () => Promise<void>>();

const topic = `sdk.${randomBytes(3).toString('hex')}.order.paid`;
const unique = (p: string) => `${p}-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  herald = await startHerald();
  orders = await createDatabase('orders');
  coupons = await createDatabase('coupons');
  await ensureBarrierTable(orders.pool);
  await orders.pool.query('CREATE TABLE orders (id VARCHAR(64) PRIMARY KEY, status VARCHAR(16) NOT NULL, message_id VARCHAR(128) NULL)');
  await ensureInboxTable(coupons.pool);
  await coupons.pool.query('CREATE TABLE coupons (order_id VARCHAR(64) NOT NULL, source VARCHAR(16) NOT NULL, PRIMARY KEY (order_id, source))');
  await coupons.pool.query('CREATE TABLE effects (id INT AUTO_INCREMENT PRIMARY KEY, message_id VARCHAR(128) NOT NULL, source VARCHAR(16) NOT NULL)');

  producerClient = new HeraldClient({ baseUrl: herald.url, token: herald.keys.producer });
  adminClient = new HeraldClient({ baseUrl: herald.url, token: herald.keys.admin });

  const handler = createCheckHandler({ pool: orders.pool, secret: herald.keys.checkSecret });
  checkServer = createServer((req, res) => {
    const id = String(req.headers['herald-message-id'] ?? '');
    checkCalls.push(id);
    void (beforeCheck.get(id)?.() ?? Promise.resolve()).then(() => handler(req, res));
  });
  checkUrl = await listen(checkServer, '/herald/check');

  // The secret is known only once the subscription exists; the handler reads it per request.
  let secret = '';
  webhookServer = createServer(
    createWebhookHandler({ secret: () => secret, transactions: mysql2Transactions(coupons.pool), consumer: 'coupons' }, async (tx, event) => {
      await tx.query('INSERT INTO effects (message_id, source) VALUES (?, ?)', [event.id, 'webhook']);
    }),
  );
  const hookUrl = await listen(webhookServer, '/hooks/herald');
  const sub = await adminClient.createSubscription({ name: 'coupons', topic, target: { type: 'webhook', url: hookUrl }, backoff: { initialMs: 50, maxMs: 200 } });
  secret = sub.secret ?? '';
  expect(secret).toMatch(/^whsec_/);

  fastifyApp = Fastify();
  await fastifyApp.register(heraldCheckPlugin, { pool: orders.pool, secret: herald.keys.checkSecret, path: '/fastify/check' });
  await fastifyApp.listen({ port: 0, host: '127.0.0.1' });
  amqp = await connect(AMQP_URL);
}, 90_000);

afterAll(async () => {
  await amqp?.close().catch(() => undefined);
  await fastifyApp?.close();
  for (const s of [checkServer, webhookServer]) if (s) await new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); });
  await herald?.stop();
  await orders?.drop();
  await coupons?.drop();
});

async function listen(server: Server, path: string): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
}

function barrier(hooks = {}, transactions: TransactionRunner<SqlConnection> = mysql2Transactions(orders.pool), url = checkUrl) {
  return new HeraldBarrier({ client: producerClient, transactions, checkUrl: url, hooks, idPrefix: 'sdk-' });
}

const message = (orderId: string, checkAfterMs = 400) => ({ topic, key: orderId, payload: { orderId }, checkAfterMs, checkIntervalMs: 200 });
const markPaid = (orderId: string) => async (tx: SqlConnection, messageId: string) => {
  await tx.query('INSERT INTO orders (id, status, message_id) VALUES (?, ?, ?)', [orderId, 'paid', messageId]);
  return orderId;
};
const orderRow = async (orderId: string) => ((await orders.pool.query('SELECT status FROM orders WHERE id = ?', [orderId]))[0] as Array<{ status: string }>)[0];
const barrierRow = async (id: string) => ((await orders.pool.query('SELECT outcome FROM herald_barrier WHERE message_id = ?', [id]))[0] as Array<{ outcome: string }>)[0]?.outcome;
const effects = async (id: string) => ((await coupons.pool.query('SELECT source FROM effects WHERE message_id = ?', [id]))[0] as Array<{ source: string }>).map((r) => r.source);
const statusIs = (id: string, ...statuses: HeraldMessage['status'][]) => async () => {
  const m = await producerClient.getMessage(id);
  return statuses.includes(m.status) ? m : undefined;
};
const crash = () => {
  throw new Error('simulated producer crash');
};

describe('check-back-free transactions', () => {
  it('commit path: the business row, the barrier row and the message commit; delivered once; no check-back needed', async () => {
    const orderId = unique('o');
    const result = await barrier().transaction(message(orderId, 5_000), markPaid(orderId));
    expect(result).toMatchObject({ value: orderId, confirmed: true, message: { status: 'confirmed' } });
    expect(await orderRow(orderId)).toEqual({ status: 'paid' });
    expect(await barrierRow(result.messageId)).toBe('commit');
    await waitFor(statusIs(result.messageId, 'delivered'), 'delivered');
    await waitFor(async () => (await effects(result.messageId)).length === 1, 'coupon effect');
    expect(checkCalls).not.toContain(result.messageId);
  });

  it('rollback path: the callback throws → local rollback, message cancelled, nothing delivered', async () => {
    const orderId = unique('o');
    let messageId = '';
    const err = await barrier().transaction(message(orderId, 5_000), async (tx, id) => {
      messageId = id;
      await markPaid(orderId)(tx, id);
      throw new Error('card declined');
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('card declined');
    expect(await orderRow(orderId)).toBeUndefined();
    expect(await barrierRow(messageId)).toBeUndefined();
    expect((await producerClient.getMessage(messageId)).status).toBe('cancelled');
    expect(await effects(messageId)).toEqual([]);
  });

  it('crash between local commit and confirm: the check-back finds the barrier row and commits; delivered once', async () => {
    const orderId = unique('o');
    let messageId = '';
    await expect(barrier({ afterCommit: (id: string) => ((messageId = id), crash()) }).transaction(message(orderId), markPaid(orderId))).rejects.toThrow('simulated producer crash');
    expect(await orderRow(orderId)).toEqual({ status: 'paid' });
    expect((await producerClient.getMessage(messageId)).status).toBe('prepared');
    const m = await waitFor(statusIs(messageId, 'delivered'), 'check-back commit and delivery');
    expect(m.checkAttempts).toMatchObject([{ check: 1, answer: 'commit', statusCode: 200 }]);
    await waitFor(async () => (await effects(messageId)).length === 1, 'coupon effect');
  });

  it('confirm lost (Herald unreachable for the confirm): the transaction still succeeds, reports confirmed: false, and the check-back commits', async () => {
    const orderId = unique('o');
    const dropConfirms: typeof fetch = (input, init) => (String(input).endsWith('/confirm') ? Promise.reject(new TypeError('fetch failed')) : fetch(input, init));
    const lossy = new HeraldClient({ baseUrl: herald.url, token: herald.keys.producer, fetch: dropConfirms, retry: { attempts: 2, initialDelayMs: 5 } });
    const result = await new HeraldBarrier({ client: lossy, transactions: mysql2Transactions(orders.pool), checkUrl }).transaction(message(orderId), markPaid(orderId));
    expect(result.confirmed).toBe(false);
    const m = await waitFor(statusIs(result.messageId, 'delivered'), 'check-back commit');
    expect(m.checkAttempts?.[0]?.answer).toBe('commit');
  });

  it('COMMIT succeeded but its answer was lost: no cancel is sent (CommitOutcomeUnknownError), and the check-back commits', async () => {
    const orderId = unique('o');
    let messageId = '';
    const inner = mysql2Transactions(orders.pool);
    const lostCommitAnswer: TransactionRunner<SqlConnection> = {
      run: async (work, committing) => {
        await inner.run(work, committing);
        throw new Error('Connection lost: The server closed the connection.');
      },
    };
    const err = await barrier({}, lostCommitAnswer).transaction(message(orderId), async (tx, id) => {
      messageId = id;
      return markPaid(orderId)(tx, id);
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommitOutcomeUnknownError);
    expect((await producerClient.getMessage(messageId)).status).toBe('prepared');
    const m = await waitFor(statusIs(messageId, 'delivered'), 'check-back commit');
    expect(m.checkAttempts?.[0]?.answer).toBe('commit');
    expect(await orderRow(orderId)).toEqual({ status: 'paid' });
  });

  it('crash before local commit: no barrier row, the check-back writes rollback and cancels; nothing delivered', async () => {
    const orderId = unique('o');
    let messageId = '';
    await expect(barrier({ beforeCommit: (id: string) => ((messageId = id), crash()) }).transaction(message(orderId), markPaid(orderId))).rejects.toThrow('simulated producer crash');
    expect(await orderRow(orderId)).toBeUndefined();
    const m = await waitFor(statusIs(messageId, 'cancelled'), 'check-back rollback');
    expect(m.checkAttempts).toMatchObject([{ check: 1, answer: 'rollback' }]);
    expect(await barrierRow(messageId)).toBe('rollback');
    expect(await effects(messageId)).toEqual([]);
  });

  it('a transaction still open when the check-back comes loses: Herald cancels, and the late commit fails and rolls back', async () => {
    const orderId = unique('o');
    let messageId = '';
    const err = await barrier().transaction(message(orderId, 300), async (tx, id) => {
      messageId = id;
      await markPaid(orderId)(tx, id);
      // Still inside the open transaction when Herald checks, answers rollback and cancels.
      await waitFor(statusIs(id, 'cancelled'), 'cancel by check-back');
      return orderId;
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BarrierLostError);
    expect(await orderRow(orderId)).toBeUndefined();
    expect(await barrierRow(messageId)).toBe('rollback');
    expect((await producerClient.getMessage(messageId)).status).toBe('cancelled');
  });

  it('a check-back arriving after the barrier insert but before COMMIT waits for the commit and answers commit (never both)', async () => {
    const orderId = unique('o');
    let messageId = '';
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let inserted!: () => void;
    const barrierInserted = new Promise<void>((r) => (inserted = r));
    let arrived!: () => void;
    const checkArrived = new Promise<void>((r) => (arrived = r));
    const inner = mysql2Transactions(orders.pool);
    const slowCommit: TransactionRunner<SqlConnection> = {
      run: (work, committing) => inner.run(async (tx, execute) => {
        const value = await work(tx, execute);
        // The barrier row is inserted (uncommitted); the transaction stays open until released.
        inserted();
        await held;
        return value;
      }, committing),
    };
    const pending = barrier({}, slowCommit).transaction(message(orderId, 300), async (tx, id) => {
      messageId = id;
      // Hold Herald's check call until the barrier row is in, so it lands in the window under test.
      beforeCheck.set(id, async () => {
        await barrierInserted;
        arrived();
      });
      return markPaid(orderId)(tx, id);
    });
    await checkArrived;
    // The check handler is now blocked on the row lock; give it a moment to be really waiting.
    await new Promise((r) => setTimeout(r, 300));
    expect((await producerClient.getMessage(messageId)).status).toBe('prepared');
    release();
    const result = await pending;
    expect(result.confirmed).toBe(true);
    const m = await waitFor(statusIs(messageId, 'confirmed', 'delivered'), 'committed');
    expect(m.checkAttempts?.[0]?.answer).toBe('commit');
    expect(await barrierRow(messageId)).toBe('commit');
  });

  it('answerFromBarrier directly: blocks on an open transaction that holds the row and answers what it decided', async () => {
    const id = unique('direct');
    const conn = await orders.pool.getConnection();
    try {
      await conn.beginTransaction();
      await conn.query("INSERT INTO herald_barrier (message_id, outcome) VALUES (?, 'commit')", [id]);
      let settled = false;
      const answer = answerFromBarrier(orders.pool, id).finally(() => (settled = true));
      await new Promise((r) => setTimeout(r, 300));
      expect(settled).toBe(false);
      await conn.commit();
      expect(await answer).toBe('commit');

      const id2 = unique('direct');
      await conn.beginTransaction();
      await conn.query("INSERT INTO herald_barrier (message_id, outcome) VALUES (?, 'commit')", [id2]);
      const answer2 = answerFromBarrier(orders.pool, id2);
      await new Promise((r) => setTimeout(r, 200));
      await conn.rollback();
      expect(await answer2).toBe('rollback');
      expect(await barrierRow(id2)).toBe('rollback');
      expect(await answerFromBarrier(orders.pool, id2)).toBe('rollback');
    } finally {
      conn.release();
    }
  });

  it('drizzle transactions and the Fastify plugin: a crash after commit is committed by a check through the plugin', async () => {
    const db = drizzle(orders.pool);
    const orderId = unique('o');
    let messageId = '';
    const viaFastify = `http://127.0.0.1:${(fastifyApp.server.address() as AddressInfo).port}/fastify/check`;
    const b = new HeraldBarrier({ client: producerClient, transactions: drizzleTransactions(db), checkUrl: viaFastify, hooks: { afterCommit: (id: string) => ((messageId = id), crash()) } });
    await expect(b.transaction(message(orderId), async (tx, id) => {
      await tx.execute(`INSERT INTO orders (id, status, message_id) VALUES ('${orderId}', 'paid', '${id}')`);
    })).rejects.toThrow('simulated producer crash');
    const m = await waitFor(statusIs(messageId, 'delivered'), 'commit via Fastify plugin');
    expect(m.checkAttempts?.[0]).toMatchObject({ answer: 'commit', statusCode: 200 });
    expect(await orderRow(orderId)).toEqual({ status: 'paid' });
  });

  it('the check handler refuses a call without Herald’s signature (401), so Herald counts it unknown', async () => {
    const res = await fetch(checkUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'herald-message-id': 'x' }, body: JSON.stringify({ id: 'x', check: 1 }) });
    expect(res.status).toBe(401);
    expect(await barrierRow('x')).toBeUndefined();
  });
});

describe('idempotent consumers', () => {
  it('webhook: a replayed delivery (at-least-once) reaches the handler twice and takes effect once', async () => {
    const { id } = await producerClient.publish({ topic, payload: { orderId: unique('o') } });
    await waitFor(statusIs(id, 'delivered'), 'first delivery');
    expect(await adminClient.redeliverMessage(id, { all: true })).toEqual({ requeued: 1 });
    await waitFor(async () => (await producerClient.listDeliveries(id)).items[0]?.attemptsLog.length === 2, 'second delivery');
    await waitFor(statusIs(id, 'delivered'), 'delivered again');
    expect(await effects(id)).toEqual(['webhook']);
  });

  it('webhook: a request without a valid signature is refused (401) and has no effect', async () => {
    const url = `http://127.0.0.1:${(webhookServer.address() as AddressInfo).port}/hooks/herald`;
    const id = unique('forged');
    const now = String(Math.floor(Date.now() / 1000));
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': now, 'webhook-signature': 'v1,AAAA' }, body: '{}' });
    expect(res.status).toBe(401);
    expect(await effects(id)).toEqual([]);
  });

  it('processOnce: two concurrent deliveries of one message serialise on the inbox row; one effect', async () => {
    const id = unique('m');
    const opts = { transactions: mysql2Transactions(coupons.pool), consumer: 'parallel' };
    const work = async (tx: SqlConnection) => {
      await tx.query('INSERT INTO effects (message_id, source) VALUES (?, ?)', [id, 'parallel']);
      await new Promise((r) => setTimeout(r, 100));
    };
    const outcomes = await Promise.all([processOnce(opts, id, work), processOnce(opts, id, work)]);
    expect(outcomes.map((o) => o.duplicate).sort()).toEqual([false, true]);
    expect(await effects(id)).toEqual(['parallel']);
    // A failed attempt records nothing, so a redelivery runs again.
    const failing = unique('m');
    await expect(processOnce(opts, failing, async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(await processOnce(opts, failing, async () => 'ok')).toEqual({ duplicate: false, value: 'ok' });
  });

  it('RabbitMQ: acked after commit, a redelivered message is deduplicated by messageId', async () => {
    const exchange = `sdk.${randomBytes(3).toString('hex')}`;
    const rTopic = `${exchange}.points`;
    const channel = await amqp.createChannel();
    await channel.assertExchange(exchange, 'topic', { durable: false, autoDelete: true });
    const queue = (await channel.assertQueue('', { exclusive: true })).queue;
    await channel.bindQueue(queue, exchange, '#');
    await adminClient.createSubscription({ name: 'points', topic: rTopic, target: { type: 'rabbitmq', exchange }, backoff: { initialMs: 50, maxMs: 200 } });
    const seen: string[] = [];
    await consumeOnce(channel, queue, { transactions: mysql2Transactions(coupons.pool), consumer: 'points', retryDelayMs: 50 }, async (tx, event) => {
      seen.push(event.id);
      await tx.query('INSERT INTO effects (message_id, source) VALUES (?, ?)', [event.id, 'amqp']);
    });
    const { id } = await producerClient.publish({ topic: rTopic, payload: { points: 10 } });
    await waitFor(statusIs(id, 'delivered'), 'published');
    await adminClient.redeliverMessage(id, { all: true });
    await waitFor(async () => (await producerClient.listDeliveries(id)).items[0]?.attemptsLog.length === 2, 'published again');
    await waitFor(async () => (await channel.checkQueue(queue)).messageCount === 0 && seen.length >= 1, 'queue drained');
    await new Promise((r) => setTimeout(r, 300));
    expect(await effects(id)).toEqual(['amqp']);
    expect((await channel.checkQueue(queue)).messageCount).toBe(0);
    await channel.close();
  });
});
