import type { Queue } from 'bullmq';
import type { CheckRepository } from '@herald/db';
import { checkJob } from './check.jobs';
import { restoreJobs } from './restore-jobs';

export interface CheckSweeperOptions {
  batchSize: number;
  /** How long a claimed round is reserved for its job: the check timeout and a margin. */
  leaseMs: number;
}

/**
 * Claims prepared messages whose check is due and enqueues one check job per message. Safe on
 * every replica at once: the claim skips rows another sweeper holds, and the job ids are
 * deterministic. MySQL holds the schedule (next_check_at), so a Redis that forgot everything
 * only delays checks until the next sweep.
 */
export class CheckSweeper {
  constructor(
    private readonly checks: Pick<CheckRepository, 'claimDue'>,
    private readonly queue: Queue,
    private readonly options: CheckSweeperOptions,
  ) {}

  /** Sweeps until nothing due is left (or 20 batches); returns how many checks it enqueued. */
  async sweep(): Promise<number> {
    let total = 0;
    for (let batch = 0; batch < 20; batch++) {
      const claimed = await this.checks.claimDue(this.options.batchSize, this.options.leaseMs);
      // A round is claimed again only when its job did not run within the lease: replace an
      // orphaned job under the same id rather than trust its existence.
      if (claimed.length > 0) await restoreJobs(this.queue, claimed.map(checkJob));
      total += claimed.length;
      if (claimed.length < this.options.batchSize) break;
    }
    return total;
  }
}
