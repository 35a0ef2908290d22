import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection, type Pool, type ResultSetHeader, type RowDataPacket } from 'mysql2/promise';
import type { DeliveryJobRef } from '@herald/domain';
import { fanOut, type FanOutSource } from './fan-out';
import { AttemptRepository, BlockedKeyRepository, ClaimRepository, createDatabasePool, createDb, migrate, PurgeRepository, subscriptions, type HeraldDb } from './index';

// The per-key sequence at the level of its transactions: appends serialise per key until commit,
// only the head is ever due or claimable, and settling the head makes the next one due.
const server = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const name = `herald_test_order_${randomBytes(4).toString('hex')}`;
const url = `${server}/${name}`;
let pool: Pool;
let db: HeraldDb;
let claims: ClaimRepository;
let attempts: AttemptRepository;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const lease = () => 30_000;
const ok = { ok: true, durationMs: 2, statusCode: 200 };

beforeAll(async () => {
  await migrate({ url });
  pool = createDatabasePool({ url });
  db = createDb(pool);
  claims = new ClaimRepository(db, { maxClaimBatchesInFlight: 0 });
  attempts = new AttemptRepository(db, { maxBatchesInFlight: 0 });
  const now = new Date();
  await db.insert(subscriptions).values({
    id: 'sub_ord', name: 'ordered', topicPattern: 'ord.#', targetType: 'webhook', target: JSON.stringify({ type: 'webhook', url: 'http://x/h' }), maxAttempts: 3,
    backoffInitialMs: 100, backoffMaxMs: 1000, enabled: true, disabledReason: null, secret: 'whsec_x', previousSecret: null, previousSecretExpiresAt: null, createdAt: now, updatedAt: now, ordering: 'key',
  });
});

afterAll(async () => {
  await pool?.end();
  const c = await createConnection(server);
  await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await c.end();
});

/** A confirmed message of `key` (stored as a confirm would have), ready to fan out. */
async function confirmedMessage(key: string, delayMs = 0): Promise<FanOutSource> {
  const id = `m-${randomBytes(4).toString('hex')}`;
  const [result] = await pool.query<ResultSetHeader>(
    `INSERT INTO messages (id, topic, message_key, payload, headers, status, check_after_ms, check_interval_ms, max_checks, on_checks_exhausted, delay_ms, content_hash, created_at, updated_at)
     VALUES (?, 'ord.paid', ?, '{}', '{}', 'confirmed', 0, 0, 0, 'rollback', ?, REPEAT('0', 64), UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))`,
    [id, key, delayMs],
  );
  return { seq: BigInt(result.insertId), id, tenant: 'default', topic: 'ord.paid', key, delayMs };
}

async function row(deliveryId: number) {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT id, status, next_attempt_at, order_key, skipped_at FROM deliveries WHERE id = ?', [deliveryId]);
  return rows[0];
}

const deliveryOf = async (m: FanOutSource) => {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT id FROM deliveries WHERE message_seq = ?', [m.seq]);
  return Number(rows[0]?.id);
};

describe('a key’s sequence', () => {
  it('makes a second commit on the same key wait for the first, and queues its delivery behind the first one’s', async () => {
    const key = `k-${randomBytes(3).toString('hex')}`;
    const [m1, m2] = [await confirmedMessage(key), await confirmedMessage(key)];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // The first commit has fanned out and holds its transaction open, as a slow replica would.
    const first = db.transaction(async (tx) => {
      const made = await fanOut(tx, [m1], new Date());
      await gate;
      return made;
    });
    await sleep(200);
    let secondDone = false;
    const second = db.transaction((tx) => fanOut(tx, [m2], new Date())).then((made) => ((secondDone = true), made));
    await sleep(500);
    expect(secondDone, 'the second commit waited for the first').toBe(false);
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(a.get(m1.seq)?.jobs).toHaveLength(1);
    // The second delivery waits: no job, no next attempt, after the first in the key's sequence.
    expect(b.get(m2.seq)?.jobs).toHaveLength(0);
    const [d1, d2] = [await deliveryOf(m1), await deliveryOf(m2)];
    expect(d1).toBeLessThan(d2);
    expect(await row(d2)).toMatchObject({ status: 'pending', next_attempt_at: null, order_key: `default/${key}/` });
  });

  it('never claims a waiting delivery, and delivering the head makes the next one due after its message’s delay', async () => {
    const key = `k-${randomBytes(3).toString('hex')}`;
    const [m1, m2, m3] = [await confirmedMessage(key), await confirmedMessage(key, 60_000), await confirmedMessage(key)];
    const made = await db.transaction((tx) => fanOut(tx, [m1, m2, m3], new Date()));
    // One batch: its first delivery of the key is the head, the others wait in batch order.
    expect([...made.values()].flatMap((f) => f.jobs)).toHaveLength(1);
    const [d1, d2, d3] = [await deliveryOf(m1), await deliveryOf(m2), await deliveryOf(m3)];
    expect(d1 < d2 && d2 < d3).toBe(true);
    const waitingJob: DeliveryJobRef = { deliveryId: d2, generation: 0, attempt: 0, runAt: new Date() };
    expect(await claims.claim(waitingJob, 30_000)).toBe(false);
    expect(await claims.claimWithContext(waitingJob, lease)).toBeUndefined();

    const head: DeliveryJobRef = { deliveryId: d1, generation: 0, attempt: 0, runAt: new Date() };
    const context = await claims.claimWithContext(head, lease);
    expect(context).toBeDefined();
    const before = Date.now();
    const outcome = await attempts.record(head, context!, ok, new Date());
    expect(outcome).toMatchObject({ kind: 'delivered', woken: { deliveryId: d2, generation: 0, attempt: 0 } });
    const woken = (outcome as { woken: DeliveryJobRef }).woken;
    // m2 asked for a 60 s delay from its confirm: the wake keeps it.
    expect(woken.runAt.getTime()).toBeGreaterThanOrEqual(before + 55_000);
    expect((await row(d2))?.next_attempt_at).not.toBeNull();
    expect((await row(d3))?.next_attempt_at).toBeNull();
  });

  it('skips a dead head only: the key moves on, the skipped delivery stays dead', async () => {
    const key = `k-${randomBytes(3).toString('hex')}`;
    const [m1, m2] = [await confirmedMessage(key), await confirmedMessage(key)];
    await db.transaction((tx) => fanOut(tx, [m1, m2], new Date()));
    const [d1, d2] = [await deliveryOf(m1), await deliveryOf(m2)];
    const blocked = new BlockedKeyRepository(db);
    // A pending head is not blocked.
    expect(await blocked.skip('sub_ord', 'default', key)).toBeUndefined();
    const head: DeliveryJobRef = { deliveryId: d1, generation: 0, attempt: 0, runAt: new Date() };
    const context = await claims.claimWithContext(head, lease);
    // Permanent failure: dead at once.
    expect(await attempts.record(head, context!, { ok: false, permanent: true, durationMs: 1, statusCode: 400, error: 'HTTP 400' }, new Date())).toMatchObject({ kind: 'dead' });
    expect(await blocked.list('sub_ord', 10)).toEqual(expect.arrayContaining([expect.objectContaining({ tenant: 'default', key, deliveryId: d1, messageId: m1.id, waiting: 1 })]));
    const skipped = await blocked.skip('sub_ord', 'default', key);
    expect(skipped).toMatchObject({ deliveryId: d1, messageId: m1.id, woken: { deliveryId: d2 } });
    expect(await row(d1)).toMatchObject({ status: 'dead', skipped_at: expect.anything() });
    expect((await row(d2))?.next_attempt_at).not.toBeNull();
    expect((await blocked.list('sub_ord', 10)).some((k) => k.key === key)).toBe(false);
  });

  it('purges a key’s lock row once idle and settled, never while its last delivery is open', async () => {
    const [settled, open] = [`k-${randomBytes(3).toString('hex')}`, `k-${randomBytes(3).toString('hex')}`];
    const ms = [await confirmedMessage(settled), await confirmedMessage(open)];
    await db.transaction((tx) => fanOut(tx, ms, new Date()));
    const head: DeliveryJobRef = { deliveryId: await deliveryOf(ms[0]!), generation: 0, attempt: 0, runAt: new Date() };
    await attempts.record(head, (await claims.claimWithContext(head, lease))!, ok, new Date());
    const purges = new PurgeRepository(db);
    await purges.purgeOrderLocks(new Date(Date.now() + 60_000), 100);
    const [rows] = await pool.query<RowDataPacket[]>('SELECT order_key FROM delivery_order_locks WHERE order_key IN (?)', [[`default/${settled}/`, `default/${open}/`]]);
    expect(rows.map((r) => r.order_key)).toEqual([`default/${open}/`]);
  });

  it('keeps keys that differ only by trailing spaces apart (a PAD SPACE collation would merge them)', async () => {
    const key = `k-${randomBytes(3).toString('hex')}`;
    const [m1, m2, m3] = [await confirmedMessage(key), await confirmedMessage(`${key} `), await confirmedMessage(key)];
    for (const m of [m1, m2, m3]) await db.transaction((tx) => fanOut(tx, [m], new Date()));
    const [d1, d2, d3] = [await deliveryOf(m1), await deliveryOf(m2), await deliveryOf(m3)];
    expect((await row(d2))?.next_attempt_at).not.toBeNull();
    // Delivering the head of `key ` must not wake `key`'s second message while its head is still out.
    const head: DeliveryJobRef = { deliveryId: d2, generation: 0, attempt: 0, runAt: new Date() };
    const outcome = await attempts.record(head, (await claims.claimWithContext(head, lease))!, ok, new Date());
    expect(outcome).toEqual({ kind: 'delivered', woken: undefined });
    expect((await row(d3))?.next_attempt_at).toBeNull();
    expect((await row(d1))?.next_attempt_at).not.toBeNull();
  });

  it('keeps a failed message whose dead delivery blocks an ordered key when failed messages are purged', async () => {
    const key = `k-${randomBytes(3).toString('hex')}`;
    const [m1, m2] = [await confirmedMessage(key), await confirmedMessage(key)];
    await db.transaction((tx) => fanOut(tx, [m1, m2], new Date()));
    const head: DeliveryJobRef = { deliveryId: await deliveryOf(m1), generation: 0, attempt: 0, runAt: new Date() };
    await attempts.record(head, (await claims.claimWithContext(head, lease))!, { ok: false, permanent: true, durationMs: 1, statusCode: 400, error: 'HTTP 400' }, new Date());
    const [[before]] = await pool.query<RowDataPacket[]>('SELECT status FROM messages WHERE seq = ?', [m1.seq]);
    expect(before?.status).toBe('failed');
    await new PurgeRepository(db).purgeBatch('failed', new Date(Date.now() + 60_000), 500);
    expect(await row(head.deliveryId)).toMatchObject({ status: 'dead' });
  });
});
