import type { Queue } from 'bullmq';
import { WriteBatcher, type DeliveryJobRef } from '@herald/db';
import { deliveryJob } from './delivery.jobs';
import { requeue } from './requeue';

type Job = ReturnType<typeof deliveryJob>;

/** Puts delivery jobs on the queue. Never the source of truth: a lost add is found by the reconciler. */
export class DeliveryScheduler {
  /**
   * Adds from concurrent callers (confirms answered by one group commit, say) that arrive while
   * an add is under way leave together: one `addBulk`, one Redis round trip, for all of them.
   */
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

  private inline?: (refs: readonly DeliveryJobRef[]) => DeliveryJobRef[];

  /**
   * With a worker in this process: deliveries due now are offered to `take` first (see
   * `InlineDispatcher`), and only those it returns are enqueued. Undefined turns it off.
   */
  runInline(take: ((refs: readonly DeliveryJobRef[]) => DeliveryJobRef[]) | undefined): void {
    this.inline = take;
  }

  /**
   * Runs (inline) or adds the jobs; rejects if Redis does not take the added ones within the
   * timeout (waiting for a batch included).
   */
  async schedule(refs: readonly DeliveryJobRef[]): Promise<void> {
    await this.enqueue(this.inline && refs.length > 0 ? this.inline(refs) : refs);
  }

  /** Adds the jobs to the queue, never inline; rejects as `schedule` does. */
  async enqueue(refs: readonly DeliveryJobRef[]): Promise<void> {
    if (refs.length === 0) return;
    await this.within(refs.length, this.adds.submit(refs.map((ref) => deliveryJob(ref))));
  }

  /**
   * For the reconciler: (re-)adds jobs for deliveries MySQL says are overdue, replacing any
   * job under the same id that will never run (see `requeue`).
   */
  async reschedule(refs: readonly DeliveryJobRef[]): Promise<void> {
    await this.within(refs.length, requeue(this.queue, refs.map((ref) => deliveryJob(ref))));
  }

  private async within(count: number, work: Promise<unknown>): Promise<void> {
    if (count === 0) return;
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
