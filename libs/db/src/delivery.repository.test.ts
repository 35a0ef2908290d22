import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection, type Pool, type RowDataPacket } from 'mysql2/promise';
import type { DeliveryJobRef } from '@herald/domain';
import { AttemptRepository, ClaimRepository, createDatabasePool, createDb, migrate, MessageRepository, subscriptions, type WriteBatchReport } from './index';

/** A message of the default tenant, where every message stored without a tenant lives. */
const def = (id: string) => ({ tenant: 'default', id });

const server = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const name = `herald_test_dlv_${randomBytes(4).toString('hex')}`;
const url = `${server}/${name}`;
let pool: Pool;
let messages: MessageRepository;
let claims: ClaimRepository;
let attempts: AttemptRepository;

beforeAll(async () => {
  await migrate({ url });
  pool = createDatabasePool({ url });
  const db = createDb(pool);
  messages = new MessageRepository(db);
  // One batch in flight at a time: writes that arrive meanwhile are grouped.
  attempts = new AttemptRepository(db, { maxBatchesInFlight: 1 });
  claims = new ClaimRepository(db);
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

describe('AttemptRepository group commit of attempt results', () => {
  it('records concurrent results each on its own terms: delivered, retry, dead, stale and a duplicate', async () => {
    const jobs: Array<{ messageId: string; job: DeliveryJobRef }> = [];
    for (let i = 0; i < 12; i++) {
      const outcome = await messages.prepare({ id: `batch-${i}`, topic: 'batch.paid', payload: i, confirm: true });
      if (outcome.kind !== 'created') throw new Error('not created');
      for (const job of outcome.fanOut.jobs) jobs.push({ messageId: `batch-${i}`, job });
    }
    expect(jobs).toHaveLength(24);
    const ok = { ok: true, durationMs: 3, statusCode: 200 };
    const failed = { ok: false, durationMs: 3, statusCode: 500, error: 'endpoint answered HTTP 500' };
    const contexts = new Map(await Promise.all(jobs.map(async (j) => [j.job.deliveryId, await claims.loadContext(j.job.deliveryId)] as const)));
    // Submitted in one tick, so all but the first share a batch.
    const write = (j: (typeof jobs)[number], result: typeof ok | typeof failed, asJob = j.job) =>
      attempts.record(asJob, contexts.get(j.job.deliveryId)!, result, new Date(), () => 0.5);

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
    const [attemptRows] = await pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM delivery_attempts');
    expect(Number(attemptRows[0]?.n)).toBe(20 + 2 + 1);

    const status = async (id: string) => (await messages.find(def(id)))?.status;
    for (let i = 0; i < 10; i++) expect(await status(`batch-${i}`)).toBe('delivered'); // both deliveries of messages 0–9
    expect(await status('batch-10')).toBe('failed'); // jobs 20 (dead) and 21 (pending)
    expect(await status('batch-11')).toBe('confirmed'); // job 22 delivered, job 23 never attempted
  });

  it('writes a lone result in one trip only if its delivery still matches: a stale one leaves no attempt and no roll-up', async () => {
    // A clock a minute ahead: a roll-up that ran would move the message's updated_at.
    const later = new Date(Date.now() + 60_000);
    const lone = new AttemptRepository(createDb(pool), { maxBatchesInFlight: 0, now: () => later });
    const outcome = await messages.prepare({ id: 'lone-1', topic: 'batch.lone', payload: 1, confirm: true });
    if (outcome.kind !== 'created') throw new Error('not created');
    const [a, b] = outcome.fanOut.jobs as [DeliveryJobRef, DeliveryJobRef];
    const ok = { ok: true, durationMs: 1, statusCode: 200 };
    const state = async () => {
      const [[message]] = await pool.query<RowDataPacket[]>("SELECT status, updated_at FROM messages WHERE id = 'lone-1'");
      const [attemptRows] = await pool.query<RowDataPacket[]>('SELECT delivery_id FROM delivery_attempts WHERE delivery_id IN (?, ?)', [a.deliveryId, b.deliveryId]);
      return { message, attempts: attemptRows.map((r) => Number(r.delivery_id)) };
    };
    const before = await state();

    expect(await lone.record({ ...a, attempt: 1 }, (await claims.loadContext(a.deliveryId))!, ok, later)).toEqual({ kind: 'stale' });
    expect(await state()).toEqual(before);

    expect(await lone.record(a, (await claims.loadContext(a.deliveryId))!, ok, later)).toEqual({ kind: 'delivered' });
    expect(await state()).toMatchObject({ message: { status: 'confirmed' }, attempts: [a.deliveryId] });
    expect(await lone.record(b, (await claims.loadContext(b.deliveryId))!, ok, later)).toEqual({ kind: 'delivered' });
    const after = await state();
    expect(after.message?.status).toBe('delivered');
    expect(after.message?.updated_at).not.toEqual(before.message?.updated_at);
    expect(after.attempts.sort()).toEqual([a.deliveryId, b.deliveryId].sort());
  });

  /** Confirmed messages on topic batch.mix, each with one delivery per subscription (sub_a, sub_b). */
  const confirmed = async (ids: string[]) => {
    const jobs = new Map<string, DeliveryJobRef[]>();
    for (const id of ids) {
      const outcome = await messages.prepare({ id, topic: 'batch.mix', payload: id, confirm: true });
      if (outcome.kind !== 'created') throw new Error('not created');
      jobs.set(id, outcome.fanOut.jobs);
    }
    return jobs;
  };

  it('writes exactly each result of a mixed batch with one UPDATE … CASE', async () => {
    const now = new Date('2026-05-06T07:08:09.123Z');
    const reports: WriteBatchReport[] = [];
    const clocked = new AttemptRepository(createDb(pool), { maxBatchesInFlight: 1, onBatch: (r) => reports.push(r), now: () => now });
    const jobs = await confirmed(['mix-0', 'mix-1', 'mix-2']);
    const job = (id: string, i: number) => jobs.get(id)![i]!;
    const contexts = await Promise.all([job('mix-0', 0), job('mix-0', 1), job('mix-1', 0), job('mix-1', 1), job('mix-2', 0)].map((j) => claims.loadContext(j.deliveryId)));
    const send = (n: number, j: DeliveryJobRef, result: Parameters<AttemptRepository['record']>[2]) => clocked.record(j, contexts[n]!, result, now, () => 0.5);
    const results = await Promise.all([
      send(0, job('mix-0', 0), { ok: true, durationMs: 1, statusCode: 204 }), // alone: the batch others wait behind
      send(1, job('mix-0', 1), { ok: true, durationMs: 2, statusCode: 200 }),
      send(2, job('mix-1', 0), { ok: false, durationMs: 3, statusCode: 503, error: 'endpoint answered HTTP 503', retryAfterMs: 60_000 }),
      send(3, job('mix-1', 1), { ok: false, durationMs: 4, error: 'target is malformed', permanent: true }),
      send(4, job('mix-2', 0), { ok: false, durationMs: 5, statusCode: 410, error: 'endpoint answered HTTP 410', gone: true }),
    ]);
    expect(results.map((r) => r.kind)).toEqual(['delivered', 'delivered', 'retry', 'dead', 'dead']);
    // The lone first write is not a batch (it takes the single path and reports nothing).
    expect(reports).toEqual([{ kind: 'attempt', size: 4, statements: 1, fallbacks: [] }]);
    const [rows] = await pool.query<RowDataPacket[]>(
      "SELECT message_id, subscription_id, status, attempts, last_status_code, last_error, next_attempt_at, delivered_at, dead_at, lease_until, updated_at FROM deliveries WHERE message_id LIKE 'mix-%' ORDER BY message_id, subscription_id",
    );
    const at = '2026-05-06 07:08:09.123';
    const untouched = { status: 'pending', attempts: 0, last_status_code: null, last_error: null, delivered_at: null, dead_at: null };
    expect(rows.map((r) => ({ ...r }))).toEqual([
      { message_id: 'mix-0', subscription_id: 'sub_a', status: 'delivered', attempts: 1, last_status_code: 204, last_error: null, next_attempt_at: null, delivered_at: at, dead_at: null, lease_until: null, updated_at: at },
      { message_id: 'mix-0', subscription_id: 'sub_b', status: 'delivered', attempts: 1, last_status_code: 200, last_error: null, next_attempt_at: null, delivered_at: at, dead_at: null, lease_until: null, updated_at: at },
      { message_id: 'mix-1', subscription_id: 'sub_a', status: 'pending', attempts: 1, last_status_code: 503, last_error: 'endpoint answered HTTP 503', next_attempt_at: '2026-05-06 07:09:09.123', delivered_at: null, dead_at: null, lease_until: null, updated_at: at },
      { message_id: 'mix-1', subscription_id: 'sub_b', status: 'dead', attempts: 1, last_status_code: null, last_error: 'target is malformed', next_attempt_at: null, delivered_at: null, dead_at: at, lease_until: null, updated_at: at },
      { message_id: 'mix-2', subscription_id: 'sub_a', status: 'dead', attempts: 1, last_status_code: 410, last_error: 'endpoint answered HTTP 410', next_attempt_at: null, delivered_at: null, dead_at: at, lease_until: null, updated_at: at },
      expect.objectContaining({ message_id: 'mix-2', subscription_id: 'sub_b', ...untouched }),
    ]);
    const [attempts] = await pool.query<RowDataPacket[]>(
      "SELECT a.attempt, a.ok, a.status_code, a.duration_ms, a.error FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.message_id LIKE 'mix-%' ORDER BY d.message_id, d.subscription_id",
    );
    expect(attempts.map((a) => [a.attempt, Boolean(a.ok), a.status_code, a.duration_ms, a.error])).toEqual([
      [1, true, 204, 1, null],
      [1, true, 200, 2, null],
      [1, false, 503, 3, 'endpoint answered HTTP 503'],
      [1, false, null, 4, 'target is malformed'],
      [1, false, 410, 5, 'endpoint answered HTTP 410'],
    ]);
    const status = async (id: string) => (await messages.find(def(id)))?.status;
    expect([await status('mix-0'), await status('mix-1'), await status('mix-2')]).toEqual(['delivered', 'failed', 'failed']);
  });

  it('does not wait for a message another transaction holds: its result is written alone once it is free', async () => {
    const reports: WriteBatchReport[] = [];
    const observed = new AttemptRepository(createDb(pool), { maxBatchesInFlight: 1, onBatch: (r) => reports.push(r) });
    const jobs = await confirmed(['lkd-0', 'lkd-1', 'lkd-2', 'lkd-3']);
    const picked = ['lkd-0', 'lkd-1', 'lkd-2', 'lkd-3'].map((id) => jobs.get(id)![0]!);
    const contexts = await Promise.all(picked.map((j) => claims.loadContext(j.deliveryId)));
    const ok = { ok: true, durationMs: 1, statusCode: 200 };
    const holder = await pool.getConnection();
    try {
      await holder.query('BEGIN');
      await holder.query("SELECT id FROM messages WHERE id = 'lkd-2' FOR UPDATE");
      const send = (n: number) => observed.record(picked[n]!, contexts[n]!, ok, new Date());
      const lead = send(0);
      const others = [send(1), send(3)];
      const held = send(2);
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 5_000));
      const free = await Promise.race([Promise.all([lead, ...others]), timeout]);
      expect(free).toEqual([{ kind: 'delivered' }, { kind: 'delivered' }, { kind: 'delivered' }]);
      expect(reports).toEqual([{ kind: 'attempt', size: 3, statements: 1, fallbacks: ['skipped-locked'] }]);
      await holder.query('COMMIT');
      expect(await held).toEqual({ kind: 'delivered' });
    } finally {
      holder.release();
    }
  });
});

describe('ClaimRepository batched claims', () => {
  it('leases each pending job once, with its context and its own lease; stale, duplicate and leased jobs get nothing', async () => {
    const claimer = new ClaimRepository(createDb(pool), { maxClaimBatchesInFlight: 1 });
    const jobs: DeliveryJobRef[] = [];
    for (let i = 0; i < 6; i++) {
      const outcome = await messages.prepare({ id: `claim-${i}`, topic: 'batch.claimed', payload: { n: i }, confirm: true });
      if (outcome.kind !== 'created') throw new Error('not created');
      jobs.push(...outcome.fanOut.jobs);
    }
    expect(jobs).toHaveLength(12);
    // Already leased by another worker: the batch must not take it.
    expect(await claimer.claim(jobs[11]!, 60_000)).toBe(true);
    const lease = (ms: number) => () => ms;
    // Submitted in one tick: the first goes alone, the rest leave together as one batch.
    const answers = await Promise.all([
      ...jobs.slice(0, 10).map((job, i) => claimer.claimWithContext(job, lease(10_000 + i * 1_000))),
      claimer.claimWithContext(jobs[3]!, lease(10_000)), // the same job twice
      claimer.claimWithContext({ ...jobs[4]!, attempt: 1 }, lease(10_000)), // stale: the row is at attempt 0
      claimer.claimWithContext({ ...jobs[5]!, generation: 1 }, lease(10_000)), // stale generation
      claimer.claimWithContext(jobs[11]!, lease(10_000)), // leased
      claimer.claimWithContext({ ...jobs[0]!, deliveryId: 999_999 }, lease(10_000)), // no such delivery
    ]);
    for (let i = 0; i < 10; i++) {
      expect(answers[i]?.delivery.id).toBe(jobs[i]!.deliveryId);
      expect(answers[i]?.message).toMatchObject({ id: `claim-${Math.floor(i / 2)}`, payload: { n: Math.floor(i / 2) } });
      expect(answers[i]?.subscription?.secret).toBe('whsec_x');
    }
    expect(answers.slice(10)).toEqual([undefined, undefined, undefined, undefined, undefined]);

    const [rows] = await pool.query<RowDataPacket[]>(
      `SELECT id, TIMESTAMPDIFF(MICROSECOND, updated_at, lease_until) / 1000 AS lease_ms FROM deliveries WHERE id IN (${jobs.map((j) => j.deliveryId).join(',')})`,
    );
    const leaseMs = new Map(rows.map((r) => [Number(r.id), Number(r.lease_ms)]));
    for (let i = 0; i < 10; i++) expect(leaseMs.get(jobs[i]!.deliveryId)).toBe(10_000 + i * 1_000);
    // A second round finds every one of them leased, and takes the one nobody claimed yet.
    const again = await Promise.all(jobs.map((job) => claimer.claimWithContext(job, lease(10_000))));
    expect(again.map((c) => c?.delivery.id)).toEqual(jobs.map((job, i) => (i === 10 ? job.deliveryId : undefined)));
  });
  it('renews a lease this process was given only while it is still that lease, or ran out with nobody else taking the row', async () => {
    const jobs: DeliveryJobRef[] = [];
    for (let i = 0; i < 3; i++) {
      const outcome = await messages.prepare({ id: `renew-${i}`, topic: 'batch.renew', payload: { n: i }, confirm: true });
      if (outcome.kind !== 'created') throw new Error('not created');
      jobs.push(outcome.fanOut.jobs[0]!);
    }
    const [mine, expired, taken] = jobs as [DeliveryJobRef, DeliveryJobRef, DeliveryJobRef];
    const given = new Date(Date.now() + 60_000);
    const gone = new Date(Date.now() - 1_000);
    // As a confirm batch leaves them: leased to this process, one lease already over.
    await pool.query('UPDATE deliveries SET lease_until = ? WHERE id IN (?)', [given, [mine.deliveryId, taken.deliveryId]]);
    await pool.query('UPDATE deliveries SET lease_until = ? WHERE id = ?', [gone, expired.deliveryId]);
    // Another worker holds `taken` now (its own lease, as after ours ran out and it claimed).
    await pool.query('UPDATE deliveries SET lease_until = ? WHERE id = ?', [new Date(Date.now() + 30_000), taken.deliveryId]);
    const lease = () => 20_000;

    expect((await claims.renewClaimWithContext(mine, given, lease))?.delivery.id).toBe(mine.deliveryId);
    expect((await claims.renewClaimWithContext(expired, gone, lease))?.message).toMatchObject({ id: 'renew-1', payload: { n: 1 } });
    expect(await claims.renewClaimWithContext(taken, given, lease)).toBeUndefined();
    // Renewed: the same lease no longer matches, and a stale job gets nothing.
    expect(await claims.renewClaimWithContext(mine, given, lease)).toBeUndefined();
    expect(await claims.renewClaimWithContext({ ...expired, attempt: 1 }, gone, lease)).toBeUndefined();
    const [rows] = await pool.query<RowDataPacket[]>(
      `SELECT id, TIMESTAMPDIFF(MICROSECOND, updated_at, lease_until) / 1000 AS lease_ms FROM deliveries WHERE id IN (?) ORDER BY id`,
      [[mine.deliveryId, expired.deliveryId]],
    );
    expect(rows.map((r) => Number(r.lease_ms))).toEqual([20_000, 20_000]);
  });

  it('does not wait for a delivery row another transaction holds: that claim is made alone once it is free', async () => {
    const reports: WriteBatchReport[] = [];
    const claimer = new ClaimRepository(createDb(pool), { maxClaimBatchesInFlight: 1, onBatch: (r) => reports.push(r) });
    const jobs: DeliveryJobRef[] = [];
    for (let i = 0; i < 3; i++) {
      const outcome = await messages.prepare({ id: `claim-held-${i}`, topic: 'batch.held', payload: { n: i }, confirm: true });
      if (outcome.kind !== 'created') throw new Error('not created');
      jobs.push(...outcome.fanOut.jobs);
    }
    const heldJob = jobs[3]!;
    const holder = await pool.getConnection();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT id FROM deliveries WHERE id = ? FOR UPDATE', [heldJob.deliveryId]);
      const lease = () => 10_000;
      // The first claim leaves alone; the rest, the held row among them, form one batch.
      const lead = claimer.claimWithContext(jobs[0]!, lease);
      const held = claimer.claimWithContext(heldJob, lease);
      const others = jobs.filter((j) => j !== jobs[0] && j !== heldJob).map((j) => claimer.claimWithContext(j, lease));
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 5_000));
      const free = await Promise.race([Promise.all([lead, ...others]), timeout]);
      expect(free).not.toBe('timeout');
      expect((free as Awaited<typeof lead>[]).map((c) => c?.delivery.id)).toEqual(jobs.filter((j) => j !== heldJob).map((j) => j.deliveryId));
      expect(reports).toEqual([{ kind: 'claim', size: 5, statements: 1, fallbacks: ['skipped-locked'] }]);
      // A later batch is not stuck behind the held row either.
      const more = await messages.prepare({ id: 'claim-held-late', topic: 'batch.held', payload: {}, confirm: true });
      if (more.kind !== 'created') throw new Error('not created');
      const late = await Promise.race([Promise.all(more.fanOut.jobs.map((j) => claimer.claimWithContext(j, lease))), timeout]);
      expect(late).not.toBe('timeout');
      await holder.query('COMMIT');
      expect((await held)?.delivery.id).toBe(heldJob.deliveryId);
    } finally {
      holder.release();
    }
  });
});
