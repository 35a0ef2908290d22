import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection, type Pool, type RowDataPacket } from 'mysql2/promise';
import { AttemptRepository, CheckRepository, ClaimRepository, createDatabasePool, createDb, MessageRepository, migrate, PurgeRepository, subscriptions } from './index';

const server = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const name = `herald_test_purge_${randomBytes(4).toString('hex')}`;
const url = `${server}/${name}`;
let pool: Pool;
let messages: MessageRepository;
let checks: CheckRepository;
let claims: ClaimRepository;
let attempts: AttemptRepository;
let purges: PurgeRepository;

/** A cut-off after everything the test stored: every terminal message qualifies. */
const later = () => new Date(Date.now() + 3_600_000);
const ok = { ok: true, durationMs: 2, statusCode: 200 };
const failure = { ok: false, durationMs: 2, statusCode: 500, error: 'HTTP 500' };
const call = (answer: 'commit' | 'rollback' | 'unknown') => ({ startedAt: new Date(), durationMs: 1, answer, statusCode: 200, error: null });

beforeAll(async () => {
  await migrate({ url });
  pool = createDatabasePool({ url });
  const db = createDb(pool);
  messages = new MessageRepository(db, { maxBatchesInFlight: 0 });
  checks = new CheckRepository(db);
  claims = new ClaimRepository(db);
  attempts = new AttemptRepository(db, { maxBatchesInFlight: 0 });
  purges = new PurgeRepository(db);
  const now = new Date();
  const sub = (id: string, topicPattern: string) => ({
    id, name: id, topicPattern, targetType: 'webhook', target: JSON.stringify({ type: 'webhook', url: 'http://x/h' }),
    maxAttempts: 1, backoffInitialMs: 100, backoffMaxMs: 1000, enabled: true, disabledReason: null, secret: 'whsec_x', previousSecret: null, previousSecretExpiresAt: null, createdAt: now, updatedAt: now,
  });
  // Topic `one.*` has one subscription; `two.*` has two.
  await db.insert(subscriptions).values([sub('sub_one', 'one.#'), sub('sub_two_a', 'two.#'), sub('sub_two_b', 'two.#')]);
});

afterAll(async () => {
  await pool?.end();
  const c = await createConnection(server);
  await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await c.end();
});

/** Publishes `id` directly and answers each of its deliveries with `results` (default: all delivered). */
async function publish(id: string, topic = 'one.paid', results: Array<typeof ok | typeof failure | 'leave'> = [ok], tenant = 'default') {
  const outcome = await messages.prepare({ id, topic, payload: { n: id }, confirm: true }, { tenant });
  if (outcome.kind !== 'created') throw new Error(`${id} not created`);
  const jobs = [...outcome.fanOut.jobs].sort((a, b) => a.deliveryId - b.deliveryId);
  for (const [i, job] of jobs.entries()) {
    const result = results[i] ?? ok;
    if (result === 'leave') continue;
    const context = await claims.loadContext(job.deliveryId);
    await attempts.record(job, context!, result, new Date(), () => 0.5);
  }
  return (await messages.find({ tenant, id }))?.status;
}

/** Prepares `id` and answers its first check with `answer` (a message with a check attempt). */
async function checked(id: string, answer: 'commit' | 'rollback' | 'unknown', extra: Record<string, unknown> = {}, tenant = 'default') {
  const outcome = await messages.prepare({ id, topic: 'none.here', payload: 1, checkUrl: 'http://x/c', checkAfterMs: 1000, ...extra }, { tenant });
  if (outcome.kind !== 'created') throw new Error(`${id} not created`);
  const seq = (await messages.find({ tenant, id }))?.seq as bigint;
  await checks.record({ seq, messageId: id, check: 1 }, call(answer));
  return (await messages.find({ tenant, id }))?.status;
}

/** Rows about `ids` in each table. */
async function rowsOf(ids: string[]) {
  const count = async (sql: string) => Number((await pool.query<RowDataPacket[]>(sql, [ids]))[0][0]?.n);
  return {
    messages: await count('SELECT COUNT(*) AS n FROM messages WHERE id IN (?)'),
    deliveries: await count('SELECT COUNT(*) AS n FROM deliveries WHERE message_id IN (?)'),
    deliveryAttempts: await count('SELECT COUNT(*) AS n FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.message_id IN (?)'),
    checkAttempts: await count('SELECT COUNT(*) AS n FROM check_attempts WHERE message_id IN (?)'),
  };
}

async function orphans() {
  const [[a], [d], [c]] = await Promise.all([
    pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM delivery_attempts a LEFT JOIN deliveries d ON d.id = a.delivery_id WHERE d.id IS NULL'),
    pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM deliveries d LEFT JOIN messages m ON m.seq = d.message_seq WHERE m.seq IS NULL'),
    pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM check_attempts c LEFT JOIN messages m ON m.seq = c.message_seq WHERE m.seq IS NULL'),
  ]);
  return { attempts: Number(a[0]?.n), deliveries: Number(d[0]?.n), checks: Number(c[0]?.n) };
}

/** Purges `status` until nothing more goes. */
async function purgeAll(status: 'delivered' | 'cancelled' | 'failed', olderThan = later()) {
  let removed = 0;
  for (;;) {
    const batch = await purges.purgeBatch(status, olderThan, 50);
    removed += batch.messages;
    if (batch.messages === 0) return removed;
  }
}

describe('PurgeRepository', () => {
  it('removes a delivered message and everything about it once its retention ran out (guards against rows left behind)', async () => {
    expect(await publish('p-delivered-1')).toBe('delivered');
    expect(await publish('p-delivered-2', 'two.paid')).toBe('delivered');
    // A checked message later delivered: its check call goes too.
    expect(await checked('p-delivered-3', 'commit', { topic: 'one.checked' })).toBe('confirmed');
    const [job] = (await pool.query<RowDataPacket[]>("SELECT id FROM deliveries WHERE message_id = 'p-delivered-3'"))[0];
    await attempts.record({ deliveryId: Number(job?.id), generation: 0, attempt: 0, runAt: new Date() }, (await claims.loadContext(Number(job?.id)))!, ok, new Date());
    const ids = ['p-delivered-1', 'p-delivered-2', 'p-delivered-3'];
    expect(await rowsOf(ids)).toEqual({ messages: 3, deliveries: 4, deliveryAttempts: 4, checkAttempts: 1 });

    // Not yet due: a cut-off before they were delivered keeps them.
    expect((await purges.purgeBatch('delivered', new Date(Date.now() - 60_000), 50)).messages).toBe(0);
    expect(await rowsOf(ids)).toEqual({ messages: 3, deliveries: 4, deliveryAttempts: 4, checkAttempts: 1 });

    const batch = await purges.purgeBatch('delivered', later(), 50);
    expect(batch).toMatchObject({ messages: 3, deliveries: 4, deliveryAttempts: 4, checkAttempts: 1 });
    expect(await rowsOf(ids)).toEqual({ messages: 0, deliveries: 0, deliveryAttempts: 0, checkAttempts: 0 });
    expect(await orphans()).toEqual({ attempts: 0, deliveries: 0, checks: 0 });
    expect(await messages.find({ tenant: 'default', id: 'p-delivered-1' })).toBeUndefined();
    // The id is free again: preparing it makes a new message.
    expect((await messages.prepare({ id: 'p-delivered-1', topic: 'other', payload: 'new', checkUrl: 'http://x/c' })).kind).toBe('created');
  });

  it('removes a cancelled message with its check calls, from its cancellation', async () => {
    expect(await checked('p-cancelled-1', 'rollback')).toBe('cancelled');
    const seq = (await messages.find({ tenant: 'default', id: 'p-cancelled-1' }))?.seq as bigint;
    expect(await rowsOf(['p-cancelled-1'])).toMatchObject({ messages: 1, checkAttempts: 1 });
    expect(await purgeAll('cancelled')).toBeGreaterThanOrEqual(1);
    expect(await rowsOf(['p-cancelled-1'])).toEqual({ messages: 0, deliveries: 0, deliveryAttempts: 0, checkAttempts: 0 });
    // A late check answer for the purged message leaves no row behind.
    await checks.record({ seq, messageId: 'p-cancelled-1', check: 2 }, call('unknown'));
    expect(await orphans()).toEqual({ attempts: 0, deliveries: 0, checks: 0 });
  });

  it('never removes prepared, confirmed, unresolved or failed messages, nor one with a pending delivery (guards against purging live work)', async () => {
    await checked('k-prepared', 'unknown');
    await checked('k-unresolved', 'unknown', { maxChecks: 1, onChecksExhausted: 'hold' });
    expect(await publish('k-confirmed', 'one.paid', ['leave'])).toBe('confirmed');
    // One delivery dead, the other still pending: failed, with work under way.
    expect(await publish('k-failed-pending', 'two.paid', [failure, 'leave'])).toBe('failed');
    expect(await publish('k-failed', 'one.paid', [failure])).toBe('failed');
    // A delivered row whose delivery a replay just made pending again (as seen mid-replay).
    expect(await publish('k-delivered-pending')).toBe('delivered');
    await pool.query("UPDATE deliveries SET status = 'pending', delivered_at = NULL WHERE message_id = 'k-delivered-pending'");
    const kept = ['k-prepared', 'k-unresolved', 'k-confirmed', 'k-failed-pending', 'k-failed', 'k-delivered-pending'];
    const before = await rowsOf(kept);
    expect(before.messages).toBe(6);

    for (const status of ['delivered', 'cancelled'] as const) await purgeAll(status);
    expect(await rowsOf(kept)).toEqual(before);
    const statuses = (await pool.query<RowDataPacket[]>('SELECT id, status FROM messages WHERE id IN (?) ORDER BY id', [kept]))[0].map((r) => `${r.id}:${r.status}`);
    expect(statuses).toEqual(['k-confirmed:confirmed', 'k-delivered-pending:delivered', 'k-failed:failed', 'k-failed-pending:failed', 'k-prepared:prepared', 'k-unresolved:unresolved']);

    // With a retention for failed: the failed one goes, the one with a pending delivery stays.
    expect(await purgeAll('failed')).toBe(1);
    expect((await rowsOf(['k-failed'])).messages).toBe(0);
    expect(await rowsOf(kept.filter((id) => id !== 'k-failed'))).toMatchObject({ messages: 5 });
    expect(await orphans()).toEqual({ attempts: 0, deliveries: 0, checks: 0 });
  });

  it('leaves a message whole when its batch is cut off mid-way, and the next run finishes it (guards against half-deleted messages)', async () => {
    // Delivered after a check call: a row in every table.
    expect(await checked('i-cut', 'commit', { topic: 'one.checked' })).toBe('confirmed');
    const [job] = (await pool.query<RowDataPacket[]>("SELECT id FROM deliveries WHERE message_id = 'i-cut'"))[0];
    await attempts.record({ deliveryId: Number(job?.id), generation: 0, attempt: 0, runAt: new Date() }, (await claims.loadContext(Number(job?.id)))!, ok, new Date());
    const whole = { messages: 1, deliveries: 1, deliveryAttempts: 1, checkAttempts: 1 };
    expect(await rowsOf(['i-cut'])).toEqual(whole);
    const holder = await pool.getConnection();
    try {
      // Hold the check call's row: the batch deletes nothing of check_attempts until then.
      await holder.query('START TRANSACTION');
      await holder.query("SELECT id FROM check_attempts WHERE message_id = 'i-cut' FOR UPDATE");
      const batch = purges.purgeBatch('delivered', later(), 50);
      batch.catch(() => undefined);
      const victim = await waitFor(async () => {
        const [rows] = await pool.query<RowDataPacket[]>("SELECT id FROM information_schema.processlist WHERE db = ? AND info LIKE 'DELETE%check_attempts%'", [name]);
        return rows[0]?.id as number | undefined;
      });
      await pool.query(`KILL CONNECTION ${Number(victim)}`);
      await expect(batch).rejects.toThrow();
      await holder.query('ROLLBACK');
    } finally {
      holder.release();
    }
    // The killed transaction was rolled back whole.
    expect(await rowsOf(['i-cut'])).toEqual(whole);
    expect(await purgeAll('delivered')).toBeGreaterThanOrEqual(1);
    expect(await rowsOf(['i-cut'])).toEqual({ messages: 0, deliveries: 0, deliveryAttempts: 0, checkAttempts: 0 });
  });

  it('holds no lock a confirm, a prepare or a delivery needs while its batch is under way (guards against the hot path waiting for every purge batch)', async () => {
    // Due candidates; the last one, delivered after a check call, has a row in every table.
    for (const id of ['h-old-1', 'h-old-2']) expect(await publish(id)).toBe('delivered');
    expect(await checked('h-old-3', 'commit', { topic: 'one.checked' })).toBe('confirmed');
    const [job] = (await pool.query<RowDataPacket[]>("SELECT id FROM deliveries WHERE message_id = 'h-old-3'"))[0];
    await attempts.record({ deliveryId: Number(job?.id), generation: 0, attempt: 0, runAt: new Date() }, (await claims.loadContext(Number(job?.id)))!, ok, new Date());
    // Prepared before the batch, confirmed while it runs: the newest confirmed entries of the
    // status indexes sit right before the oldest delivered ones, which the batch holds.
    expect((await messages.prepare({ id: 'h-new', topic: 'one.paid', payload: 1, checkUrl: 'http://x/c' })).kind).toBe('created');
    const holder = await pool.getConnection();
    try {
      // Hold a check call the batch deletes: it waits there, holding what it locked before.
      await holder.query('START TRANSACTION');
      await holder.query("SELECT id FROM check_attempts WHERE message_id = 'h-old-3' FOR UPDATE");
      const batch = purges.purgeBatch('delivered', later(), 50);
      await waitFor(async () => {
        const [rows] = await pool.query<RowDataPacket[]>("SELECT id FROM information_schema.processlist WHERE db = ? AND info LIKE 'DELETE%check_attempts%'", [name]);
        return rows[0]?.id as number | undefined;
      });
      const hotPath = async () => {
        const confirmed = await messages.decide({ tenant: 'default', id: 'h-new' }, 'confirm');
        if (confirmed.kind !== 'applied') throw new Error(`h-new: ${confirmed.kind}`);
        for (const created of confirmed.fanOut.jobs) await attempts.record(created, (await claims.loadContext(created.deliveryId))!, ok, new Date(), () => 0.5);
        return publish('h-newer');
      };
      const raced = await Promise.race([hotPath(), new Promise((resolve) => setTimeout(() => resolve('waited for the batch'), 3_000))]);
      expect(raced).toBe('delivered');
      expect((await messages.find({ tenant: 'default', id: 'h-new' }))?.status).toBe('delivered');
      await holder.query('ROLLBACK');
      expect((await batch).messages).toBeGreaterThanOrEqual(3);
    } finally {
      holder.release();
    }
    expect(await rowsOf(['h-old-1', 'h-old-2', 'h-old-3'])).toEqual({ messages: 0, deliveries: 0, deliveryAttempts: 0, checkAttempts: 0 });
    expect(await rowsOf(['h-new', 'h-newer'])).toMatchObject({ messages: 2, deliveries: 2, deliveryAttempts: 2 });
  });

  it('removes only the purged tenant\'s rows when another tenant holds the same id (guards against deleting by message id)', async () => {
    // Tenant acme's `t-shared` is delivered and due; tenant zeta's is still prepared, with a check call.
    expect(await publish('t-shared', 'one.checked', [ok], 'acme')).toBe('delivered');
    expect(await checked('t-shared', 'unknown', {}, 'zeta')).toBe('prepared');
    expect(await checked('t-shared-2', 'commit', { topic: 'one.paid' }, 'zeta')).toBe('confirmed');
    expect(await publish('t-shared-2', 'two.paid', [ok, ok], 'acme')).toBe('delivered');
    const zeta = async () => {
      const [[row]] = await pool.query<RowDataPacket[]>(
        `SELECT (SELECT COUNT(*) FROM messages WHERE tenant = 'zeta') AS messages,
           (SELECT COUNT(*) FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE m.tenant = 'zeta') AS deliveries,
           (SELECT COUNT(*) FROM check_attempts c JOIN messages m ON m.seq = c.message_seq WHERE m.tenant = 'zeta') AS checks`,
      );
      return { messages: Number(row?.messages), deliveries: Number(row?.deliveries), checks: Number(row?.checks) };
    };
    const before = await zeta();
    expect(before).toEqual({ messages: 2, deliveries: 1, checks: 2 });
    await purgeAll('delivered');
    expect(await messages.find({ tenant: 'acme', id: 't-shared' })).toBeUndefined();
    expect(await messages.find({ tenant: 'acme', id: 't-shared-2' })).toBeUndefined();
    expect(await zeta()).toEqual(before);
    expect(await orphans()).toEqual({ attempts: 0, deliveries: 0, checks: 0 });
  });

  it('finds candidates through the (status, updated_at) index', async () => {
    const [plan] = await pool.query<RowDataPacket[]>("EXPLAIN SELECT id FROM messages WHERE status = 'delivered' AND updated_at < UTC_TIMESTAMP(3) ORDER BY status, updated_at LIMIT 500");
    expect(String(plan[0]?.possible_keys)).toContain('ix_messages_status_updated');
  });

  it('records runs and tells when the oldest message of a status reached it', async () => {
    await purges.recordRun('test-purger', 3, new Date('2026-01-01T00:00:00.000Z'));
    await purges.recordRun('test-purger', 2, new Date('2026-01-01T00:01:00.000Z'));
    expect(await purges.lastRun('test-purger')).toEqual({ name: 'test-purger', lastRunAt: new Date('2026-01-01T00:01:00.000Z'), lastRunRemoved: 2, totalRemoved: 5 });
    const [row] = (await pool.query<RowDataPacket[]>("SELECT CAST(MIN(updated_at) AS CHAR) AS at FROM messages WHERE status = 'failed'"))[0];
    expect((await purges.oldestIn('failed'))?.toISOString()).toBe(`${String(row?.at).replace(' ', 'T')}Z`);
  });
});

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
