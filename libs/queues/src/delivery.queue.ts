import type { Queue } from 'bullmq';
import { WriteBatcher } from '@herald/db';
import type { DeliveryJobRef } from '@herald/domain';
import { deliveryJob } from './delivery.jobs';
import { restoreJobs } from './restore-jobs';

type Job = ReturnType<typeof deliveryJob>;

/** The delivery queue in Redis. Never the source of truth: a lost add is found by the reconciler. */
export class DeliveryQueue {
  /** Adds that arrive while one is under way leave together: one `addBulk`, one round trip. */
  private readonly adds: WriteBatcher<Job[], void>;

  constructor(
    private readonly queue: Queue,
    private readonly timeoutMs = 2_000,
  ) {
    this.adds = new WriteBatcher<Job[], void>(
      async (batches) => {
        await this.queue.addBulk(batches.flat());
        return batches.map(() => undefined);
      },
      { maxInFlight: 2, maxBatch: 500, maxWeight: 1_000, weight: (jobs) => jobs.length },
    );
  }

  /** Adds the jobs; rejects if Redis does not take them within the timeout (waiting for a batch included). */
  async add(refs: readonly DeliveryJobRef[]): Promise<void> {
    if (refs.length === 0) return;
    await this.within(refs.length, this.adds.submit(refs.map((ref) => deliveryJob(ref))));
  }

  /** (Re-)adds jobs for deliveries MySQL says are overdue, replacing orphans under their ids (see `restoreJobs`). */
  async restore(refs: readonly DeliveryJobRef[]): Promise<void> {
    if (refs.length === 0) return;
    await this.within(refs.length, restoreJobs(this.queue, refs.map((ref) => deliveryJob(ref))));
  }

  /** Job counts by state, for the queue gauge. */
  counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'delayed', 'active', 'failed');
  }

  private async within(count: number, work: Promise<unknown>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        work,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`Redis did not take ${count} delivery job(s) within ${this.timeoutMs} ms`)), this.timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}
