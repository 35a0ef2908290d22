import { emptyCounts, PURGEABLE_STATUSES, type PurgeableStatus, type PurgeCounts, type PurgeCursor, type PurgeRepository } from '@herald/db';

/** How long each terminal status is kept, in ms; 0 keeps it forever. */
export type Retention = Record<PurgeableStatus, number>;

export interface PurgerOptions {
  intervalMs: number;
  retention: Retention;
  /** Messages per batch (one short transaction each). */
  batchSize?: number;
  /** The name its runs are recorded under (one row for all replicas). */
  name?: string;
  /** After each batch that removed something: its rows by table. */
  onPurged?: (counts: PurgeCounts) => void;
  /** After each run, finished or cut short by an error. */
  onRun?: (at: Date, removed: number) => void;
  log?: { warn: (obj: object, msg: string) => void };
  now?: () => Date;
}

export const PURGER_NAME = 'purger';

/**
 * Retention: every interval, removes the messages whose retention ran out, batch after batch until
 * none is left. On a timer in every worker process rather than a queue job: it needs MySQL only,
 * and replicas share the work through the batches' SKIP LOCKED (a batch finding all its
 * candidates held leaves them to the purger holding them).
 */
/** A key's lock row is kept this long after its last use, so a busy key does not recreate it each time. */
const ORDER_LOCK_IDLE_MS = 3_600_000;

export class Purger {
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private stopping = false;
  private readonly now: () => Date;

  constructor(
    private readonly purges: Pick<PurgeRepository, 'purgeBatch' | 'recordRun' | 'purgeOrderLocks'>,
    private readonly options: PurgerOptions,
  ) {
    this.now = options.now ?? (() => new Date());
  }

  /** Statuses with a retention: the others are never purged. */
  get enabled(): boolean {
    return PURGEABLE_STATUSES.some((s) => this.options.retention[s] > 0);
  }

  start(): void {
    if (!this.enabled) return;
    // Jittered, so replicas started together do not all read the same candidates at once.
    const delay = () => this.options.intervalMs * (0.75 + Math.random() / 2);
    const tick = () => {
      this.running = this.run()
        .catch((err: Error) => this.options.log?.warn({ err: { message: err.message } }, 'purge run failed; retrying next interval'))
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, delay());
        });
    };
    this.timer = setTimeout(tick, delay());
  }

  /** One run over every status with a retention; returns the rows removed, by table. */
  async run(): Promise<PurgeCounts> {
    const total = emptyCounts();
    try {
      for (const status of PURGEABLE_STATUSES) {
        const keepMs = this.options.retention[status];
        if (keepMs > 0) await this.purgeStatus(status, keepMs, total);
      }
      await this.purgeOrderLocks();
    } finally {
      const at = this.now();
      this.options.onRun?.(at, total.messages);
      await this.purges.recordRun(this.options.name ?? PURGER_NAME, total.messages, at).catch((err: Error) => this.options.log?.warn({ err: { message: err.message } }, 'could not record the purge run'));
    }
    return total;
  }

  private async purgeStatus(status: PurgeableStatus, keepMs: number, total: PurgeCounts): Promise<void> {
    const limit = this.options.batchSize ?? 500;
    let after: PurgeCursor | undefined;
    while (!this.stopping) {
      const batch = await this.purges.purgeBatch(status, new Date(this.now().getTime() - keepMs), limit, after);
      const counts = { messages: batch.messages, deliveries: batch.deliveries, deliveryAttempts: batch.deliveryAttempts, checkAttempts: batch.checkAttempts };
      for (const k of Object.keys(total) as Array<keyof PurgeCounts>) total[k] += counts[k];
      if (counts.messages > 0) this.options.onPurged?.(counts);
      // Done: nothing left, or what is left another purger holds.
      if (batch.candidates < limit || batch.locked === 0) return;
      // A whole batch kept (each has a pending delivery): the next one starts past it.
      if (batch.messages === 0) after = batch.last ?? undefined;
    }
  }

  /** Lock rows of ordered keys idle for an hour whose last delivery is settled: a few batches a run. */
  private async purgeOrderLocks(): Promise<void> {
    const idleBefore = new Date(this.now().getTime() - ORDER_LOCK_IDLE_MS);
    for (let i = 0; i < 10 && !this.stopping; i++) if ((await this.purges.purgeOrderLocks(idleBefore, 1_000)) < 1_000) return;
  }

  async stop(): Promise<void> {
    const timer = this.timer;
    this.timer = undefined;
    this.stopping = true;
    clearTimeout(timer);
    await this.running;
  }
}
