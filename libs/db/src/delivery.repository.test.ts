import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection, type Pool, type RowDataPacket } from 'mysql2/promise';
import { createDatabasePool, createDb, DeliveryRepository, migrate, MessageRepository, subscriptions, type DeliveryJobRef } from './index';

const server = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const name = `herald_test_dlv_${randomBytes(4).toString('hex')}`;
const url = `${server}/${name}`;
let pool: Pool;
let messages: MessageRepository;
let deliveries: DeliveryRepository;

beforeAll(async () => {
  await migrate({ url });
  pool = createDatabasePool({ url });
  const db = createDb(pool);
  messages = new MessageRepository(db);
  // One batch in flight at a time: writes that arrive meanwhile are grouped.
  deliveries = new DeliveryRepository(db, undefined, { maxBatchesInFlight: 1 });
  const now = new Date();
  const sub = (id: string) => ({
    id, name: id, topicPattern: 'batch.#', targetType: 'webhook', target: JSON.stringify({ type: 'webhook', url: 'http://x/h' }),
    maxAttempts: 2, backoffInitialMs: 100, backoffMaxMs: 1000, enabled: true, disabledReason: null, secret: 'whsec_x', previousSecret: null, previousSecretExpiresAt: null, createdAt: now, updatedAt: now,
  });
  await db.insert(subscriptions).values([sub('sub_a'), sub('sub_b')]);
});

afterAll(async () => {
  await pool?.end();
  const c = await createConnection(server);
  await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await c.end();
});

describe('DeliveryRepository group commit of attempt results', () => {
  it('records concurrent results each on its own terms: delivered, retry, dead, stale and a duplicate', async () => {
    const jobs: Array<{ messageId: string; job: DeliveryJobRef }> = [];
    for (let i = 0; i < 12; i++) {
      const outcome = await messages.prepare({ id: `batch-${i}`, topic: 'batch.paid', payload: i, confirm: true });
      if (outcome.kind !== 'created') throw new Error('not created');
      for (const job of outcome.jobs) jobs.push({ messageId: `batch-${i}`, job });
    }
    expect(jobs).toHaveLength(24);
    const ok = { ok: true, durationMs: 3, statusCode: 200 };
    const failed = { ok: false, durationMs: 3, statusCode: 500, error: 'endpoint answered HTTP 500' };
    const contexts = new Map(await Promise.all(jobs.map(async (j) => [j.job.deliveryId, await deliveries.loadContext(j.job.deliveryId)] as const)));
    // Submitted in one tick, so all but the first share a batch.
    const write = (j: (typeof jobs)[number], result: typeof ok | typeof failed, asJob = j.job) =>
      deliveries.recordAttempt(asJob, contexts.get(j.job.deliveryId)!, result, new Date(), () => 0.5);

    const results = await Promise.all([
      ...jobs.slice(0, 20).map((j) => write(j, ok)),
      write(jobs[20]!, failed), // attempt 1 of 2: retry
      write(jobs[21]!, failed, { ...jobs[21]!.job, attempt: 1 }), // the row is at attempt 0: stale
      write(jobs[22]!, ok),
      write(jobs[22]!, ok), // the same attempt twice: one records, one is stale
    ]);
    expect(results.slice(0, 20).every((r) => r.kind === 'delivered')).toBe(true);
    expect(results[20]).toMatchObject({ kind: 'retry', job: { deliveryId: jobs[20]!.job.deliveryId, attempt: 1 } });
    expect(results[21]).toEqual({ kind: 'stale' });
    expect([results[22]?.kind, results[23]?.kind].sort()).toEqual(['delivered', 'stale']);

    // The retried one's last attempt fails for good: dead, and its message is failed.
    const retry = results[20] as { kind: 'retry'; job: DeliveryJobRef };
    expect(await write(jobs[20]!, failed, retry.job)).toMatchObject({ kind: 'dead', reason: expect.stringContaining('gave up after 2 attempts') });

    const [rows] = await pool.query<RowDataPacket[]>('SELECT id, status, attempts, lease_until, last_status_code FROM deliveries ORDER BY id');
    const byId = new Map(rows.map((r) => [Number(r.id), r]));
    for (const j of jobs.slice(0, 20)) expect(byId.get(j.job.deliveryId)).toMatchObject({ status: 'delivered', attempts: 1, lease_until: null, last_status_code: 200 });
    expect(byId.get(jobs[20]!.job.deliveryId)).toMatchObject({ status: 'dead', attempts: 2, last_status_code: 500 });
    expect(byId.get(jobs[21]!.job.deliveryId)).toMatchObject({ status: 'pending', attempts: 0 });
    const [attempts] = await pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM delivery_attempts');
    expect(Number(attempts[0]?.n)).toBe(20 + 2 + 1);

    const status = async (id: string) => (await messages.findById(id))?.status;
    for (let i = 0; i < 10; i++) expect(await status(`batch-${i}`)).toBe('delivered'); // both deliveries of messages 0–9
    expect(await status('batch-10')).toBe('failed'); // jobs 20 (dead) and 21 (pending)
    expect(await status('batch-11')).toBe('confirmed'); // job 22 delivered, job 23 never attempted
  });
});
