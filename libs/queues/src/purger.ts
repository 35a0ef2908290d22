import { emptyCounts, PURGEABLE_STATUSES, type PurgeableStatus, type PurgeBatch, type PurgeCounts, type PurgeCursor, type PurgeRepository } from '@herald/db';

/** How long each terminal status is kept, in ms; 0 keeps it forever. */
export type Retention = Record<PurgeableStatus, number>;

export interface PurgerOptions {
  intervalMs: number;
  retention: Retention;
  /** Messages per batch (one short transaction each). */
  batchSize?: number;
  /**
   * At most this many messages (with all their rows) removed per second by this purger, so the
   * first purge of a large backlog is spread out rather than run flat out; 0 or unset: no cap.
   */
  maxPerSecond?: number;
  /**
   * A backlog is removed at most this many times as fast as its messages finished (became
   * delivered, cancelled or failed), judged from each batch's candidates; default 3. Never slower
   * than 100 messages a second nor faster than the cap; 0: only the cap paces.
   */
  paceFactor?: number;
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

/** A backlog goes three times as fast as it built up: the retention requirement's margin over the insert rate. */
const DEFAULT_PACE_FACTOR = 3;

/** Paced by its candidates, a purger still removes at least this many messages a second (or the cap). */
const MIN_PACED_PER_SECOND = 100;

/** A key's lock row is kept this long after its last use, so a busy key does not recreate it each time. */
const ORDER_LOCK_IDLE_MS = 3_600_000;

/**
 * Retention: every interval, removes the messages whose retention ran out, batch after batch until
 * none is left. On a timer in every worker process rather than a queue job: it needs MySQL only,
 * and replicas share the work through the batches' SKIP LOCKED (a batch finding all its
 * candidates held leaves them to the purger holding them).
 */
export class Purger {
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private stopping = false;
  private readonly now: () => Date;
  /** Wakes a purger waiting for its rate cap when it is stopped. */
  private wake?: () => void;

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
    const cap = this.options.maxPerSecond ?? 0;
    // Under a cap, a batch is at most a second's worth, so the pauses stay short and even.
    const limit = Math.max(1, Math.min(this.options.batchSize ?? 500, cap > 0 ? Math.ceil(cap) : Infinity));
    let after: PurgeCursor | undefined;
    while (!this.stopping) {
      const batchStartedAt = performance.now();
      const batch = await this.purges.purgeBatch(status, new Date(this.now().getTime() - keepMs), limit, after);
      const counts = { messages: batch.messages, deliveries: batch.deliveries, deliveryAttempts: batch.deliveryAttempts, checkAttempts: batch.checkAttempts };
      for (const k of Object.keys(total) as Array<keyof PurgeCounts>) total[k] += counts[k];
      if (counts.messages > 0) this.options.onPurged?.(counts);
      // Each message removed costs 1/pace s from its batch's start: no window exceeds the pace by more than one batch.
      const rate = this.paceOf(batch, cap);
      if (rate < Infinity && counts.messages > 0) await this.pause(batchStartedAt + (counts.messages / rate) * 1000 - performance.now());
      // Done: nothing left, or what is left another purger holds.
      if (batch.candidates < limit || batch.locked === 0) return;
      // A whole batch kept (each has a pending delivery): the next one starts past it.
      if (batch.messages === 0) after = batch.last ?? undefined;
    }
  }

  /** Messages per second for the next stretch: the cap, or less where the candidates finished slowly. */
  private paceOf(batch: PurgeBatch, cap: number): number {
    const limit = cap > 0 ? cap : Infinity;
    const factor = this.options.paceFactor ?? DEFAULT_PACE_FACTOR;
    if (factor <= 0 || !batch.firstAt || !batch.last || batch.candidates < 2) return limit;
    const spanS = (batch.last.updatedAt.getTime() - batch.firstAt.getTime()) / 1000;
    if (spanS <= 0) return limit;
    return Math.min(limit, Math.max(MIN_PACED_PER_SECOND, (factor * (batch.candidates - 1)) / spanS));
  }

  /** Lock rows of ordered keys idle for an hour whose last delivery is settled: a few batches a run. */
  private async purgeOrderLocks(): Promise<void> {
    const idleBefore = new Date(this.now().getTime() - ORDER_LOCK_IDLE_MS);
    for (let i = 0; i < 10 && !this.stopping; i++) if ((await this.purges.purgeOrderLocks(idleBefore, 1_000)) < 1_000) return;
  }

  /** Waits `waitMs` (nothing if not positive); a stop ends the wait. */
  private async pause(waitMs: number): Promise<void> {
    if (waitMs <= 0 || this.stopping) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, waitMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = undefined;
  }

  async stop(): Promise<void> {
    const timer = this.timer;
    this.timer = undefined;
    this.stopping = true;
    clearTimeout(timer);
    this.wake?.();
    await this.running;
  }
}
