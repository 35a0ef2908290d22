import type { JobsOptions } from 'bullmq';
import type { CheckJobRef } from '@herald/domain';

/** The check-back queue: one repeatable `sweep` job (a BullMQ job scheduler) and `check` jobs. */
export const CHECK_QUEUE = 'checks';
export const CHECK_SWEEP_SCHEDULER = 'check-sweep';

export interface CheckJobData {
  /** The message's seq as a string (BigInt does not survive JSON). */
  seq: string;
  messageId: string;
  check: number;
}

/**
 * One id per (message, check round): a round claimed twice (after its lease ran out while its
 * job still waited) adds nothing. The seq is used, not the message id, which may contain ':'.
 */
export function checkJobId(ref: Pick<CheckJobRef, 'seq' | 'check'>): string {
  return `c-${ref.seq}-${ref.check}`;
}

export function checkJob(ref: CheckJobRef): { name: string; data: CheckJobData; opts: JobsOptions } {
  return {
    name: 'check',
    data: { seq: ref.seq.toString(), messageId: ref.messageId, check: ref.check },
    opts: {
      jobId: checkJobId(ref),
      // Processor errors (MySQL briefly down) are retried; the answer itself is never an error.
      attempts: 3,
      backoff: { type: 'exponential', delay: 1_000 },
      // As for deliveries: a kept failed job would block every later claim of this round.
      removeOnComplete: true,
      removeOnFail: true,
    },
  };
}
