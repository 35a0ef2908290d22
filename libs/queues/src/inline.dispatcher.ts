import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import type { AttemptContext, DeliveryJobRef } from '@herald/db';
import type { DeliverProcessor, ProcessResult } from './deliver.processor';
import type { QueueLog } from './observability';

export interface InlineDispatcherOptions {
  /** Deliveries run inline at once, at most; the rest go through the queue. */
  maxInFlight: number;
  /** Where a delivery goes when its inline run fails before it could record anything. */
  enqueue: (refs: readonly DeliveryJobRef[]) => Promise<void>;
  log?: QueueLog;
}

/**
 * Runs deliveries that are due now in the process that committed them, instead of a round
 * through Redis and BullMQ (an add, a move to active, a move to completed, and the wait in the
 * queue). It changes nothing about the guarantees: the row is pending in MySQL before it gets
 * here, the processor's conditional claim lets one holder send, a failed attempt schedules its
 * retry through the queue as always, and if this process dies mid-run the reconciler re-enqueues
 * the delivery once it is overdue and its lease has expired.
 */
export class InlineDispatcher {
  private readonly running = new Set<Promise<void>>();
  /** Slots promised to deliveries a transaction is leasing to this process (`reserve`). */
  private reserved = 0;
  private closed = false;

  constructor(
    private readonly processor: Pick<DeliverProcessor, 'process' | 'attemptLeased'>,
    private readonly options: InlineDispatcherOptions,
  ) {}

  /** Starts the refs that are due and fit; returns the ones it did not take (for the queue). */
  take(refs: readonly DeliveryJobRef[], now = Date.now()): DeliveryJobRef[] {
    const rest: DeliveryJobRef[] = [];
    for (const ref of refs) {
      if (this.closed || ref.runAt.getTime() > now || this.free() <= 0) rest.push(ref);
      else this.start(ref, () => this.processor.process(ref));
    }
    return rest;
  }

  /**
   * Promises up to `wanted` slots to deliveries a transaction is about to create with their lease
   * already taken by this process; returns how many it promised (none once closed). Each promised
   * slot is given back by exactly one `runClaimed` (the transaction committed) or `release` (it
   * did not). Synchronous, so the count is exact however many transactions run at once.
   */
  reserve(wanted: number): number {
    const granted = this.closed ? 0 : Math.max(0, Math.min(wanted, this.free()));
    this.reserved += granted;
    return granted;
  }

  /** Gives back promised slots whose transaction rolled back. */
  release(count: number): void {
    this.reserved = Math.max(0, this.reserved - count);
  }

  /**
   * Runs a delivery whose lease its own committed transaction took (no claim, no context read:
   * the transaction had both, unless it committed too late for the lease to cover the send — see
   * `DeliverProcessor.attemptLeased`), in a slot `reserve` promised. Runs even after `close` began, since
   * the lease keeps everyone else off the row until it expires; `close` waits for it.
   */
  runClaimed(ref: DeliveryJobRef, attemptContext: AttemptContext): void {
    this.reserved = Math.max(0, this.reserved - 1);
    this.start(ref, () => this.processor.attemptLeased(ref, attemptContext));
  }

  /**
   * Takes no more, and waits for the runs under way (their results are recorded in MySQL) and for
   * those promised to transactions still committing.
   */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.running]);
    // A promised slot becomes a run (or is released) once its transaction answers: look again then.
    while (this.reserved > 0 || this.running.size > 0) {
      await new Promise((r) => setTimeout(r, 20));
      await Promise.allSettled([...this.running]);
    }
  }

  private free(): number {
    return this.options.maxInFlight - this.running.size - this.reserved;
  }

  private start(ref: DeliveryJobRef, work: () => Promise<ProcessResult>): void {
    // Detached from the confirm request that committed it: the attempt's span joins the
    // message's trace through its stored traceparent, as from a queued job.
    const run = context.with(ROOT_CONTEXT, work).then(
      () => undefined,
      async (err: Error) => {
        // MySQL refused the claim or the result: hand it to the queue. If the claim had been
        // taken, that job is skipped while the lease lasts and the reconciler re-enqueues the
        // overdue row after it; if Redis refuses too, the reconciler is the only way back.
        this.options.log?.warn({ deliveryId: ref.deliveryId, err: { message: err.message } }, 'inline delivery failed; enqueued instead');
        await this.options.enqueue([ref]).catch((enqueueErr: Error) =>
          this.options.log?.warn({ deliveryId: ref.deliveryId, err: { message: enqueueErr.message } }, 'could not enqueue a failed inline delivery; the reconciler will'),
        );
      },
    );
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }
}
