import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { createConnection, type Pool } from 'mysql2/promise';
import { ClaimRepository, createDatabasePool, createDb, DeliveryRepository, MessageRepository, migrate, SubscriptionRepository } from '@herald/db';
import { checkJob, checkJobId, deliveryJob, deliveryJobId, restoreJobs } from './index';
import { DeliveryDispatcher } from './delivery.dispatcher';
import { DeliveryQueue } from './delivery.queue';
import { Reconciler } from './reconciler';

const server = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const name = `herald_test_q_${randomBytes(4).toString('hex')}`;
const prefix = `herald_tq_${randomBytes(3).toString('hex')}`;
let pool: Pool;
let queue: Queue;
let redis: Redis;

beforeAll(async () => {
  await migrate({ url: `${server}/${name}` });
  pool = createDatabasePool({ url: `${server}/${name}` });
  redis = new Redis(process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  queue = new Queue('deliveries', { connection: redis, prefix });
});
afterAll(async () => {
  await queue?.obliterate({ force: true }).catch(() => undefined);
  await queue?.close();
  redis?.disconnect();
  await pool?.end();
  const c = await createConnection(server);
  await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await c.end();
});

describe('job ids', () => {
  it('are deterministic per delivery, generation and attempt, and per check round', () => {
    expect(deliveryJobId({ deliveryId: 7, generation: 1, attempt: 3 })).toBe('d-7-1-3');
    expect(checkJobId({ seq: 42n, check: 2 })).toBe('c-42-2');
  });
  it('delay a job until its attempt is due, never negatively', () => {
    const now = Date.now();
    expect(deliveryJob({ deliveryId: 1, generation: 0, attempt: 0, runAt: new Date(now + 1500) }, now).opts.delay).toBe(1500);
    expect(deliveryJob({ deliveryId: 1, generation: 0, attempt: 0, runAt: new Date(now - 1500) }, now).opts.delay).toBe(0);
  });
});

describe('job options', () => {
  it('free a failed job’s id, so the reconciler’s re-add of the same attempt runs again (a kept id would block it forever)', async () => {
    const name = `fail-${randomBytes(3).toString('hex')}`;
    const failing = new Queue(name, { connection: redis, prefix });
    let runs = 0;
    const worker = new Worker(name, async () => {
      runs += 1;
      throw new Error('MySQL unavailable');
    }, { connection: new Redis(process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null }), prefix });
    try {
      const job = deliveryJob({ deliveryId: 99, generation: 0, attempt: 0, runAt: new Date() });
      // The catalogue's own options, with one try instead of five to keep the test short.
      const opts = { ...job.opts, attempts: 1 };
      await failing.add(job.name, job.data, opts);
      await waitUntil(async () => runs === 1 && (await failing.getJob(job.opts.jobId as string)) === undefined);
      await failing.add(job.name, job.data, opts);
      await waitUntil(async () => runs === 2);
      const check = checkJob({ seq: 5n, messageId: 'm', check: 1 });
      expect(check.opts.removeOnFail).toBe(true);
    } finally {
      await worker.close();
      await failing.obliterate({ force: true }).catch(() => undefined);
      await failing.close();
    }
  });
});

describe('restoreJobs', () => {
  it('replaces an orphaned job hash (left by Redis losing keys mid-operation) that would block its id forever', async () => {
    const job = deliveryJob({ deliveryId: 123, generation: 0, attempt: 1, runAt: new Date() });
    const key = `${prefix}:deliveries:${job.opts.jobId}`;
    // What a wipe in the middle of a job's processing left behind: a hash in no list.
    await redis.hset(key, { delay: '0', processedOn: String(Date.now()), ats: '1' });
    await queue.add(job.name, job.data, job.opts);
    expect(await queue.getJobState(job.opts.jobId as string)).toBe('unknown'); // the plain add was ignored
    expect(await restoreJobs(queue, [job])).toBe(1);
    expect(await queue.getJobState(job.opts.jobId as string)).toBe('waiting');
    // A live job is left alone, not duplicated.
    expect(await restoreJobs(queue, [job])).toBe(0);
    await queue.remove(job.opts.jobId as string);
  });
});

async function waitUntil(condition: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Reconciler', () => {
  it('re-enqueues an overdue delivery Redis lost, once however often it sweeps', async () => {
    const db = createDb(pool);
    await new SubscriptionRepository(db).create({ name: 's', topic: 'r.t', target: { type: 'webhook', url: 'https://example.com/h' } });
    const prepared = await new MessageRepository(db).prepare({ id: 'rec-1', topic: 'r.t', payload: {}, confirm: true });
    expect(prepared.kind === 'created' && prepared.fanOut.jobs).toHaveLength(1);
    // The enqueue after commit never happened (Redis lost it): nothing is queued.
    expect(await queue.getJobCounts('waiting', 'delayed')).toEqual({ waiting: 0, delayed: 0 });
    await new Promise((r) => setTimeout(r, 50));

    const reconciler = new Reconciler(new DeliveryRepository(db), new DeliveryDispatcher({ queue: new DeliveryQueue(queue) }), { intervalMs: 1_000, graceMs: 0, batchSize: 100 });
    expect(await reconciler.sweep()).toBe(1);
    expect(await reconciler.sweep()).toBe(1);
    expect(await reconciler.sweep()).toBe(1);
    const jobs = await queue.getJobs(['waiting', 'delayed']);
    expect(jobs.map((j) => j.id)).toEqual([deliveryJobId({ deliveryId: (prepared.kind === 'created' && prepared.fanOut.jobs[0]!.deliveryId) || 0, generation: 0, attempt: 0 })]);
  });

  it('leaves a leased delivery (a worker is sending it) alone', async () => {
    const db = createDb(pool);
    const deliveries = new DeliveryRepository(db);
    const prepared = await new MessageRepository(db).prepare({ id: 'rec-2', topic: 'r.t', payload: {}, confirm: true });
    const claims = new ClaimRepository(db);
    const ref = prepared.kind === 'created' ? prepared.fanOut.jobs[0]! : undefined;
    expect(await claims.claim(ref!, 60_000)).toBe(true);
    expect(await claims.claim(ref!, 60_000)).toBe(false);
    const due = await deliveries.overdue(100, 0);
    expect(due.map((d) => d.deliveryId)).not.toContain(ref!.deliveryId);
  });
});

describe('DeliveryQueue', () => {
  it('adds concurrent callers’ jobs together, every job once, each with its own delay', async () => {
    const batched = new Queue(`sched-${randomBytes(3).toString('hex')}`, { connection: redis, prefix });
    const addBulk = batched.addBulk.bind(batched);
    const bulkSizes: number[] = [];
    batched.addBulk = (jobs) => {
      bulkSizes.push(jobs.length);
      return addBulk(jobs);
    };
    try {
      const deliveryQueue = new DeliveryQueue(batched, 5_000);
      const now = Date.now();
      const ref = (id: number, delayMs = 0) => ({ deliveryId: id, generation: 0, attempt: 0, runAt: new Date(now + delayMs) });
      // One tick: the first two calls go at once (two adds in flight at most); the eight after them wait and leave together.
      await Promise.all([
        deliveryQueue.add([ref(1), ref(2)]),
        ...Array.from({ length: 9 }, (_, i) => deliveryQueue.add([ref(10 + i, i === 0 ? 60_000 : 0)])),
        deliveryQueue.add([]),
      ]);
      expect(bulkSizes).toEqual([2, 1, 8]);
      const counts = await batched.getJobCounts('waiting', 'delayed');
      expect(counts).toEqual({ waiting: 10, delayed: 1 });
      expect((await batched.getJob(deliveryJobId({ deliveryId: 10, generation: 0, attempt: 0 })))?.opts.delay).toBeGreaterThan(55_000);
    } finally {
      await batched.obliterate({ force: true }).catch(() => undefined);
      await batched.close();
    }
  });
});
