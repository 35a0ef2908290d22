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
  ConfirmRefusedError,
  HeraldBarrier,
  answerFromBarrier,
  createCheckHandler,
  drizzleTransactions,
  ensureBarrierTable,
  heraldCheckPlugin,
  mysql2Transactions,
  pruneBarrier,
  type SqlConnection,
  type TransactionRunner,
} from '@herald/client/barrier';
import { consumeOnce, createWebhookHandler, ensureInboxTable, processOnce } from '@herald/client/consumer';
import { createPool } from 'mysql2/promise';
import { AMQP_URL, MYSQL_SERVER, createDatabase, startHerald, waitFor, type RunningHerald } from '../shared/herald.process';

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
/**
 * Runs before the check handler answers a message whose id starts with the key (to hold a check
 * while a test acts). Keyed by id prefix, so a test registers it before the id exists.
 */
const beforeCheck = new Map<string, () => Promise<void>>();
const beforeCheckFor = (id: string) => [...beforeCheck].find(([prefix]) => id.startsWith(prefix))?.[1];

const topic = `sdk.${randomBytes(3).toString('hex')}.order.paid`;
const unique = (p: string) => `${p}-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  // A check held on purpose by a test must not time out on Herald's side first.
  herald = await startHerald({ HERALD_CHECK_TIMEOUT_MS: '20000' });
  orders = await createDatabase('orders');
  coupons = await createDatabase('coupons');
  await ensureBarrierTable(orders.pool);
  await orders.pool.query('CREATE TABLE orders (id VARCHAR(64) PRIMARY KEY, status VARCHAR(16) NOT NULL, message_id VARCHAR(128) NULL)');
  await ensureInboxTable(coupons.pool);
  await coupons.pool.query('CREATE TABLE coupons (order_id VARCHAR(64) NOT NULL, source VARCHAR(16) NOT NULL, PRIMARY KEY (order_id, source))');
  await coupons.pool.query('CREATE TABLE effects (id INT AUTO_INCREMENT PRIMARY KEY, message_id VARCHAR(128) NOT NULL, source VARCHAR(16) NOT NULL)');

  producerClient = new HeraldClient({ baseUrl: herald.url, token: herald.keys.producer });
  adminClient = new HeraldClient({ baseUrl: herald.url, token: herald.keys.admin });

  const handler = createCheckHandler({ pool: orders.pool, secret: herald.keys.checkSecret, lockWaitSeconds: 15 });
  checkServer = createServer((req, res) => {
    const id = String(req.headers['herald-message-id'] ?? '');
    checkCalls.push(id);
    void (beforeCheckFor(id)?.() ?? Promise.resolve()).then(() => handler(req, res));
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
  fastifyApp.addHook('onRequest', async (req) => {
    await beforeCheckFor(String(req.headers['herald-message-id'] ?? ''))?.();
  });
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

function barrier(hooks = {}, transactions: TransactionRunner<SqlConnection> = mysql2Transactions(orders.pool), idPrefix = 'sdk-') {
  return new HeraldBarrier({ client: producerClient, transactions, checkUrl, hooks, idPrefix });
}

/**
 * Where no check-back is expected the first check is far away (a loaded machine must not let one
 * beat the barrier insert); tests that want a check ask for one soon, but not so soon that it can
 * come before a local commit that takes milliseconds.
 */
const NO_CHECK_MS = 120_000;
const SOON_MS = 1_500;
const message = (orderId: string, checkAfterMs = NO_CHECK_MS) => ({ topic, key: orderId, payload: { orderId }, checkAfterMs, checkIntervalMs: 200 });
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
/** A promise to hold a check on until the test opens it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, wait: () => opened };
}
/** Holds checks of ids with a fresh prefix until the gate opens; returns the prefix. */
function holdChecksUntil(wait: () => Promise<void>): string {
  const prefix = `${unique('sdk')}-`;
  beforeCheck.set(prefix, wait);
  return prefix;
}
/**
 * Waits (bounded) until the check's `rollback` insert for `messageId` is executing on the orders
 * database, i.e. the check is inside the statement that the producer's row lock blocks. (An
 * autocommit INSERT waiting on a duplicate key's lock is not listed in INNODB_TRX on MariaDB, so
 * the process list is what shows it.)
 */
async function waitForBlockedCheck(messageId: string): Promise<void> {
  await waitFor(async () => {
    const [rows] = (await orders.pool.query(
      "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND COMMAND = 'Query' AND INFO LIKE ?",
      [orders.name, `INSERT INTO herald_barrier (message_id, outcome) VALUES ('${messageId}', 'rollback')%`],
    )) as unknown as [unknown[]];
    return rows.length > 0;
  }, `the check's insert for ${messageId} blocked on the barrier row`);
}
const crash = () => {
  throw new Error('simulated producer crash');
};

describe('check-back-free transactions', () => {
  it('commit path: the business row, the barrier row and the message commit; delivered once; no check-back needed', async () => {
    const orderId = unique('o');
    const result = await barrier().transaction(message(orderId), markPaid(orderId));
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
    const err = await barrier().transaction(message(orderId), async (tx, id) => {
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
    // The check waits for the local commit, so it cannot come first however slow the machine is.
    const committed = gate();
    const prefix = holdChecksUntil(committed.wait);
    const afterCommit = (id: string) => ((messageId = id), committed.open(), crash());
    await expect(barrier({ afterCommit }, undefined, prefix).transaction(message(orderId, SOON_MS), markPaid(orderId))).rejects.toThrow('simulated producer crash');
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
    const done = gate();
    const idPrefix = holdChecksUntil(done.wait);
    const result = await new HeraldBarrier({ client: lossy, transactions: mysql2Transactions(orders.pool), checkUrl, idPrefix }).transaction(message(orderId, SOON_MS), markPaid(orderId));
    done.open();
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
    const done = gate();
    const prefix = holdChecksUntil(done.wait);
    const err = await barrier({}, lostCommitAnswer, prefix).transaction(message(orderId, SOON_MS), async (tx, id) => {
      messageId = id;
      return markPaid(orderId)(tx, id);
    }).catch((e: unknown) => e);
    done.open();
    expect(err).toBeInstanceOf(CommitOutcomeUnknownError);
    expect((await producerClient.getMessage(messageId)).status).toBe('prepared');
    const m = await waitFor(statusIs(messageId, 'delivered'), 'check-back commit');
    expect(m.checkAttempts?.[0]?.answer).toBe('commit');
    expect(await orderRow(orderId)).toEqual({ status: 'paid' });
  });

  it('crash before local commit: no barrier row, the check-back writes rollback and cancels; nothing delivered', async () => {
    const orderId = unique('o');
    let messageId = '';
    await expect(barrier({ beforeCommit: (id: string) => ((messageId = id), crash()) }).transaction(message(orderId, SOON_MS), markPaid(orderId))).rejects.toThrow('simulated producer crash');
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
    const inserted = gate();
    let arrived!: () => void;
    const checkArrived = new Promise<void>((r) => (arrived = r));
    // Registered before the transaction: however early Herald checks, the check is held until the
    // barrier row is in, so it lands in the window under test.
    const prefix = holdChecksUntil(async () => {
      await inserted.wait();
      arrived();
    });
    const inner = mysql2Transactions(orders.pool);
    const slowCommit: TransactionRunner<SqlConnection> = {
      run: (work, committing) => inner.run(async (tx, execute) => {
        const value = await work(tx, execute);
        // The barrier row is inserted (uncommitted); the transaction stays open until released.
        inserted.open();
        await held;
        return value;
      }, committing),
    };
    const pending = barrier({}, slowCommit, prefix).transaction(message(orderId, 300), async (tx, id) => {
      messageId = id;
      return markPaid(orderId)(tx, id);
    });
    await checkArrived;
    // Proof that the check is inside its insert, held by the producer's row lock.
    await waitForBlockedCheck(messageId);
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
      const answer = answerFromBarrier(orders.pool, id, { lockWaitSeconds: 30 }).finally(() => (settled = true));
      await waitForBlockedCheck(id);
      expect(settled).toBe(false);
      await conn.commit();
      expect(await answer).toBe('commit');

      const id2 = unique('direct');
      await conn.beginTransaction();
      await conn.query("INSERT INTO herald_barrier (message_id, outcome) VALUES (?, 'commit')", [id2]);
      const answer2 = answerFromBarrier(orders.pool, id2, { lockWaitSeconds: 30 });
      await waitForBlockedCheck(id2);
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
    const committed = gate();
    const idPrefix = holdChecksUntil(committed.wait);
    const hooks = { afterCommit: (id: string) => ((messageId = id), committed.open(), crash()) };
    const b = new HeraldBarrier({ client: producerClient, transactions: drizzleTransactions(db), checkUrl: viaFastify, idPrefix, hooks });
    await expect(b.transaction(message(orderId, SOON_MS), async (tx, id) => {
      await tx.execute(`INSERT INTO orders (id, status, message_id) VALUES ('${orderId}', 'paid', '${id}')`);
    })).rejects.toThrow('simulated producer crash');
    const m = await waitFor(statusIs(messageId, 'delivered'), 'commit via Fastify plugin');
    expect(m.checkAttempts?.[0]).toMatchObject({ answer: 'commit', statusCode: 200 });
    expect(await orderRow(orderId)).toEqual({ status: 'paid' });
  });

  it('confirm refused (the message was cancelled meanwhile) after the local commit: ConfirmRefusedError says what committed', async () => {
    const orderId = unique('o');
    // An operator cancels the prepared message between the local commit and the confirm.
    const err = await barrier({ afterCommit: (id: string) => producerClient.cancel(id).then(() => undefined) }).transaction(message(orderId), markPaid(orderId)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfirmRefusedError);
    const refused = err as ConfirmRefusedError<string>;
    expect(refused).toMatchObject({ committed: true, value: orderId, cause: { status: 409 } });
    expect(await orderRow(orderId)).toEqual({ status: 'paid' });
    expect(await barrierRow(refused.messageId)).toBe('commit');
    expect((await producerClient.getMessage(refused.messageId)).status).toBe('cancelled');
  });

  it('pruneBarrier deletes only rows older than the retention, by the database clock, in bounded batches', async () => {
    const prefix = unique('prune');
    const insert = (suffix: string, ageSeconds: number) =>
      orders.pool.query("INSERT INTO herald_barrier (message_id, outcome, created_at) VALUES (?, 'commit', NOW(3) - INTERVAL ? SECOND)", [`${prefix}-${suffix}`, ageSeconds]);
    for (const n of [1, 2, 3]) await insert(`old${n}`, 10 * 86_400);
    await insert('recent', 3_600);
    // A pool whose session time zone is far from the server's: a Date cutoff would be shifted by
    // it; the retention is applied by the database alone.
    const farAway = createPool({ uri: `${MYSQL_SERVER}/${orders.name}`, timezone: '+14:00', connectionLimit: 1 });
    try {
      expect(await pruneBarrier(farAway, { retentionSeconds: 2 * 3_600, batchSize: 2 })).toBe(3);
    } finally {
      await farAway.end();
    }
    const [rows] = (await orders.pool.query('SELECT message_id FROM herald_barrier WHERE message_id LIKE ?', [`${prefix}-%`])) as unknown as [Array<{ message_id: string }>];
    expect(rows.map((r) => r.message_id)).toEqual([`${prefix}-recent`]);
    // The default retention keeps a row of an hour, and a week, for the longest check schedules.
    await insert('week', 7 * 86_400);
    await pruneBarrier(orders.pool);
    const [kept] = (await orders.pool.query('SELECT message_id FROM herald_barrier WHERE message_id LIKE ? ORDER BY message_id', [`${prefix}-%`])) as unknown as [Array<{ message_id: string }>];
    expect(kept.map((r) => r.message_id)).toEqual([`${prefix}-recent`, `${prefix}-week`]);
  });

  it('the check handler refuses a call without Herald’s signature (401), so Herald counts it unknown', async () => {
    const res = await fetch(checkUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'herald-message-id': 'x' }, body: JSON.stringify({ id: 'x', check: 1 }) });
    expect(res.status).toBe(401);
    expect(await barrierRow('x')).toBeUndefined();
  });
});

describe('operator reads', () => {
  it('the SDK reaches every operator read against a real Herald: caller, stats, rates, subscription health, audit, dead count', async () => {
    expect(await adminClient.whoAmI()).toMatchObject({ role: 'admin' });
    const { id } = await producerClient.publish({ topic, payload: { orderId: unique('o') } });
    await waitFor(statusIs(id, 'delivered'), 'delivered');
    const stats = await adminClient.stats();
    expect(stats.messages.delivered).toBeGreaterThan(0);
    expect((await adminClient.minuteRates()).created.length).toBeGreaterThan(0);
    expect((await adminClient.subscriptionHealth()).items.length).toBeGreaterThan(0);
    expect(await adminClient.redeliverMessage(id, { all: true })).toEqual({ requeued: 1 });
    expect((await adminClient.listAudit()).items.some((entry) => entry.targetId === id)).toBe(true);
    const [sub] = (await adminClient.listSubscriptions()).items;
    expect(await adminClient.countDeadDeliveries(sub!.id)).toEqual({ dead: expect.any(Number) });
    await expect(producerClient.stats()).rejects.toMatchObject({ status: 403 });
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
    const duplicates: string[] = [];
    await consumeOnce(channel, queue, { transactions: mysql2Transactions(coupons.pool), consumer: 'points', retryDelayMs: 50, onDuplicate: (e) => duplicates.push(e.id) }, async (tx, event) => {
      seen.push(event.id);
      await tx.query('INSERT INTO effects (message_id, source) VALUES (?, ?)', [event.id, 'amqp']);
    });
    const { id } = await producerClient.publish({ topic: rTopic, payload: { points: 10 } });
    await waitFor(statusIs(id, 'delivered'), 'published');
    await waitFor(() => seen.length >= 1, 'first delivery processed');
    await adminClient.redeliverMessage(id, { all: true });
    // The second copy must really arrive and be recognised, not merely be absent.
    await waitFor(() => duplicates.length >= 1, 'the redelivered copy reported as a duplicate');
    expect(duplicates).toEqual([id]);
    expect(seen).toEqual([id]);
    expect(await effects(id)).toEqual(['amqp']);
    await waitFor(async () => (await channel.checkQueue(queue)).messageCount === 0, 'queue drained');
    await channel.close();
  });

  it('RabbitMQ: messages that can never be processed go to the dead-letter exchange at once, reported to onPoison', async () => {
    const channel = await amqp.createChannel();
    const dlx = `sdk.dlx.${randomBytes(3).toString('hex')}`;
    await channel.assertExchange(dlx, 'fanout', { durable: false, autoDelete: true });
    const dead = (await channel.assertQueue('', { exclusive: true })).queue;
    await channel.bindQueue(dead, dlx, '');
    const queue = (await channel.assertQueue('', { exclusive: true, arguments: { 'x-dead-letter-exchange': dlx } })).queue;
    const poisoned: string[] = [];
    const errors: unknown[] = [];
    let ran = 0;
    await consumeOnce(channel, queue, { transactions: mysql2Transactions(coupons.pool), consumer: 'poison', retryDelayMs: 50, onPoison: (reason) => poisoned.push(reason), onError: (err) => errors.push(err) }, async () => {
      ran++;
    });
    channel.sendToQueue(queue, Buffer.from('{"points":1}'));
    channel.sendToQueue(queue, Buffer.from('not json'), { messageId: unique('m') });
    channel.sendToQueue(queue, Buffer.from('{}'), { messageId: 'has spaces' });
    await waitFor(async () => (await channel.checkQueue(dead)).messageCount === 3, 'three messages dead-lettered');
    expect(poisoned.sort()).toEqual(['invalid-json', 'invalid-message-id', 'no-message-id']);
    expect(errors).toHaveLength(3);
    expect(ran).toBe(0);
    expect((await channel.checkQueue(queue)).messageCount).toBe(0);
    await channel.close();
  });

  it('RabbitMQ: a channel that closes before the ack is reported to onError, never an unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const channel = await amqp.createChannel();
    const queue = (await channel.assertQueue(unique('sdk.closing'), { durable: false, autoDelete: false })).queue;
    const errors: unknown[] = [];
    const closed = new Promise<void>((resolve) => channel.once('close', () => resolve()));
    const id = unique('m');
    try {
      await consumeOnce(channel, queue, { transactions: mysql2Transactions(coupons.pool), consumer: 'closing', retryDelayMs: 20, onError: (err) => errors.push(err) }, async (tx, event) => {
        await tx.query('INSERT INTO effects (message_id, source) VALUES (?, ?)', [event.id, 'closing']);
        // The channel goes away while the message is being processed (a broker restart, a
        // connection blip): the ack that follows cannot be sent.
        await channel.close();
      });
      channel.sendToQueue(queue, Buffer.from('{}'), { messageId: id });
      await closed;
      await waitFor(() => errors.length >= 1, 'the failed ack reported');
      expect(String(errors[0])).toMatch(/closed/i);
      // The effect committed once; RabbitMQ keeps the unacked message for the next consumer,
      // whose inbox makes it a no-op.
      expect(await effects(id)).toEqual(['closing']);
      const next = await amqp.createChannel();
      const duplicates: string[] = [];
      await consumeOnce(next, queue, { transactions: mysql2Transactions(coupons.pool), consumer: 'closing', onDuplicate: (e) => duplicates.push(e.id) }, async () => {
        throw new Error('must not run again');
      });
      await waitFor(() => duplicates.length === 1, 'redelivery absorbed by the inbox');
      await next.deleteQueue(queue);
      await next.close();
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
