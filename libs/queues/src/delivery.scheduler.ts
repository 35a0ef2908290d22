import type { Queue } from 'bullmq';
import type { DeliveryJobRef } from '@herald/db';
import { deliveryJob } from './delivery.jobs';

/** Puts delivery jobs on the queue. Never the source of truth: a lost add is found by the reconciler. */
export class DeliveryScheduler {
  constructor(
    private readonly queue: Queue,
    private readonly timeoutMs = 2_000,
  ) {}

  /** Adds the jobs; rejects if Redis does not take them within the timeout. */
  async schedule(refs: readonly DeliveryJobRef[]): Promise<void> {
    if (refs.length === 0) return;
    const now = Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.queue.addBulk(refs.map((ref) => deliveryJob(ref, now))),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`Redis did not take ${refs.length} delivery job(s) within ${this.timeoutMs} ms`)), this.timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}
