import type { JobsOptions } from 'bullmq';
import type { DeliveryJobRef } from '@herald/domain';

/** The delivery queue's name; keys live under HERALD_QUEUE_PREFIX. */
export const DELIVERY_QUEUE = 'deliveries';

/** A delivery job carries ids only; MySQL holds everything else. */
export interface DeliveryJobData {
  deliveryId: number;
  generation: number;
  attempt: number;
}

/**
 * Deterministic: one id per (delivery, replay generation, attempt). Adding a job whose id is
 * already queued is a no-op, which is what lets the reconciler re-add freely.
 */
export function deliveryJobId(ref: Pick<DeliveryJobRef, 'deliveryId' | 'generation' | 'attempt'>): string {
  return `d-${ref.deliveryId}-${ref.generation}-${ref.attempt}`;
}

export function deliveryJob(ref: DeliveryJobRef, now = Date.now()): { name: string; data: DeliveryJobData; opts: JobsOptions } {
  return {
    name: 'deliver',
    data: { deliveryId: ref.deliveryId, generation: ref.generation, attempt: ref.attempt },
    opts: {
      jobId: deliveryJobId(ref),
      delay: Math.max(0, ref.runAt.getTime() - now),
      // A processor error (MySQL briefly down, say) is retried by BullMQ; delivery failures are
      // not errors: they are recorded in MySQL and scheduled as the next attempt's job.
      attempts: 5,
      backoff: { type: 'exponential', delay: 1_000 },
      // Finished jobs must not keep their ids: a failed job's id would make every later add of
      // the same attempt (by the reconciler) a silent no-op, and the delivery would never run.
      removeOnComplete: true,
      removeOnFail: true,
    },
  };
}
