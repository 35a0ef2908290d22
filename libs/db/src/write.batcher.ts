/** Which group commit a batch belongs to. */
export type WriteBatchKind = 'prepare' | 'direct' | 'confirm' | 'attempt' | 'claim';

/**
 * Why some writes of a batch left the batch path:
 * - `duplicate`: an id was already stored (or repeated in the batch) — answered from one read;
 * - `error`: a statement failed for another reason — rows were written one by one instead (a
 *   direct-publish batch: each message not yet answered was published on its own);
 * - `skipped-locked`: rows another transaction held (for a confirm, or could not find) were left
 *   to be written on their own;
 * - `failed`: the batch's transaction failed — each write was made on its own.
 */
export type WriteBatchFallback = 'duplicate' | 'error' | 'skipped-locked' | 'failed';

/** What one batch did, for metrics, logs and tests. */
export interface WriteBatchReport {
  kind: WriteBatchKind;
  /** Writes in the batch. */
  size: number;
  /**
   * Multi-row write statements the batch ran, failed ones included (a clean prepare batch: one
   * INSERT; a clean direct-publish batch: one INSERT of messages, its deliveries not counted).
   */
  statements: number;
  /** Each reason at most once; empty for a batch written whole. */
  fallbacks: WriteBatchFallback[];
  /** The error behind `error` or `failed`, for a log line. */
  error?: unknown;
}

/** Called once per batch. Must not throw. */
export type OnWriteBatch = (report: WriteBatchReport) => void;

/**
 * `callback` (metrics, logs) made unable to throw: a failing counter must never turn a write that
 * committed, and leased deliveries, into an error for its callers.
 */
export function quietly<A extends unknown[]>(callback: ((...args: A) => void) | undefined): (...args: A) => void {
  return (...args) => {
    try {
      callback?.(...args);
    } catch {
      // ignored on purpose: see above
    }
  };
}

/**
 * A write refused because too many writes already wait for a batch: the database is not
 * keeping up, and shedding at once beats queueing until the client gives up. Retryable.
 */
export class WriteQueueFullError extends Error {
  constructor(readonly maxQueued: number) {
    super(`write queue full (${maxQueued} writes waiting for the database); retry later`);
    this.name = 'WriteQueueFullError';
  }
}

/**
 * How long a group-commit batch runs before the next of its kind may start beside it. A batch
 * takes a few milliseconds; one that takes this long is waiting for something (a row lock, a
 * connection), and the writes behind it should not wait with it.
 */
export const STALLED_BATCH_MS = 50;

/** Default for `maxQueued`: ten full batches of 200 waiting. */
export const DEFAULT_MAX_QUEUED_WRITES = 2_000;

/**
 * Group commit for concurrent writes. A write submitted while fewer than `maxInFlight` batches
 * are running goes out at once (no added latency at low load); writes submitted while they run
 * wait and leave together as the next batch, one statement and one commit for all of them.
 * `run` answers each input of a batch on its own, so one bad input cannot fail its neighbours.
 * At most `maxQueued` writes wait; beyond that `submit` rejects with {@link WriteQueueFullError}.
 *
 * With `stalledAfterMs`, one batch runs at a time while batches are quick — the fewest, largest
 * batches, which is what saves round trips — and a batch running longer than that (waiting for a
 * lock, or on a connection that went away) stops holding the others back: more start, up to
 * `maxInFlight`, so one stuck batch cannot stall every write of its kind.
 */
export class WriteBatcher<In, Out> {
  private queue: Array<{ input: In; resolve: (out: Out) => void; reject: (err: unknown) => void }> = [];
  private inFlight = 0;
  /** Start times of the running batches (only kept with `stalledAfterMs`). */
  private readonly started = new Set<{ at: number }>();
  private stallTimer?: NodeJS.Timeout;

  constructor(
    private readonly run: (inputs: In[]) => Promise<Out[]>,
    private readonly options: {
      maxInFlight: number;
      maxBatch: number;
      /** A batch stops growing once its inputs weigh this much (e.g. bytes of a statement). */
      maxWeight?: number | (() => number);
      weight?: (input: In) => number;
      /** Writes that may wait for a batch (default {@link DEFAULT_MAX_QUEUED_WRITES}). */
      maxQueued?: number;
      /** One batch at a time until a running batch is this old (see above); unset: `maxInFlight` at once. */
      stalledAfterMs?: number;
    },
  ) {}

  submit(input: In): Promise<Out> {
    const maxQueued = this.options.maxQueued ?? DEFAULT_MAX_QUEUED_WRITES;
    // A write that would go out at once never waits, so only a full queue with no slot to start
    // a batch in sheds — a slot held back for a quick batch (`stalledAfterMs`) is none: writes
    // arriving faster than one batch at a time writes them would queue without bound.
    const wouldStart = this.inFlight < this.options.maxInFlight && !this.oneRunsQuickly();
    if (this.queue.length >= maxQueued && !wouldStart) return Promise.reject(new WriteQueueFullError(maxQueued));
    return new Promise<Out>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0 && !this.oneRunsQuickly()) {
      const batch = this.take();
      this.inFlight++;
      const started = { at: performance.now() };
      if (this.options.stalledAfterMs !== undefined) this.started.add(started);
      this.run(batch.map((b) => b.input))
        .then(
          (outs) => batch.forEach((b, i) => (i < outs.length ? b.resolve(outs[i] as Out) : b.reject(new Error('write batch answered too few inputs')))),
          (err: unknown) => batch.forEach((b) => b.reject(err)),
        )
        .finally(() => {
          this.inFlight--;
          this.started.delete(started);
          this.pump();
        });
    }
    this.watchForStall();
  }

  /** With `stalledAfterMs`: whether a running batch is still young enough to hold the others back. */
  private oneRunsQuickly(): boolean {
    const limit = this.options.stalledAfterMs;
    if (limit === undefined) return false;
    const now = performance.now();
    for (const s of this.started) if (now - s.at < limit) return true;
    return false;
  }

  /** Writes wait behind a young batch: look again when it would count as stalled. */
  private watchForStall(): void {
    const limit = this.options.stalledAfterMs;
    if (limit === undefined || this.stallTimer || this.queue.length === 0 || this.inFlight >= this.options.maxInFlight) return;
    const youngest = Math.max(...[...this.started].map((s) => s.at));
    if (!Number.isFinite(youngest)) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      this.pump();
    }, Math.max(1, youngest + limit - performance.now()));
    this.stallTimer.unref();
  }

  private take() {
    const { maxBatch, weight } = this.options;
    const maxWeight = typeof this.options.maxWeight === 'function' ? this.options.maxWeight() : (this.options.maxWeight ?? Infinity);
    let n = 0;
    let total = 0;
    while (n < this.queue.length && n < maxBatch) {
      const w = weight ? weight((this.queue[n] as { input: In }).input) : 0;
      if (n > 0 && total + w > maxWeight) break;
      total += w;
      n++;
    }
    return this.queue.splice(0, n);
  }
}
