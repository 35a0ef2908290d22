import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import type { LeasedDelivery, LeaseSlots } from '@herald/db';
import type { DeliveryJobRef } from '@herald/domain';
import type { DeliverProcessor, ProcessResult } from './deliver.processor';
import type { DeliveryQueue } from './delivery.queue';
import type { QueueLog } from './observability';

/** What a commit wrote, as its repository returned it. */
export interface CommittedDeliveries {
  /** Deliveries to run or queue. */
  jobs: readonly DeliveryJobRef[];
  /** Deliveries the transaction already leased to this process, each holding a slot of `slots`. */
  leased?: readonly LeasedDelivery[];
}

export interface DeliveryDispatcherOptions {
  queue: DeliveryQueue;
  /**
   * In processes that send: deliveries due now run here, in `slots` (shared with the repositories
   * that create leased deliveries), instead of a round through Redis.
   */
  sender?: { processor: Pick<DeliverProcessor, 'process' | 'attemptLeased'>; slots: LeaseSlots };
  log?: QueueLog;
  /** Deliveries committed but not enqueued (Redis down): the reconciler will enqueue them. */
  onEnqueueFailure?: (count: number) => void;
}

/**
 * The one place that decides when a committed delivery is sent. Every writer (confirm, direct
 * publish, check-back commit, replay) hands it what it committed, the BullMQ worker hands it
 * queued jobs, and the reconciler overdue ones. Leased deliveries run at once; others due now run
 * inline while slots are free; the rest, retries and delays go to the queue. MySQL already holds
 * every row, so whatever is lost here is found by the reconciler.
 */
export class DeliveryDispatcher {
  private readonly running = new Set<Promise<void>>();
  private closed = false;

  constructor(private readonly options: DeliveryDispatcherOptions) {}

  /** Never rejects: a failure to enqueue is logged and left to the reconciler. */
  async dispatch(committed: CommittedDeliveries, about: string): Promise<void> {
    const inline = this.options.sender;
    const rest: DeliveryJobRef[] = [];
    for (const { job, context: attemptContext } of committed.leased ?? []) {
      // A leased delivery runs even once closing began: its lease keeps everyone else off the row.
      if (inline) this.start(job, () => inline.processor.attemptLeased(job, attemptContext));
      else rest.push(job);
    }
    if (!inline && rest.length > 0) this.options.log?.warn({ about, deliveries: rest.length }, 'leased deliveries reached a dispatcher that does not send: queued (run once their lease expires); check the wiring');
    const now = Date.now();
    for (const ref of committed.jobs) {
      if (inline && !this.closed && ref.runAt.getTime() <= now && inline.slots.take(1) === 1) this.start(ref, () => inline.processor.process(ref));
      else rest.push(ref);
    }
    await this.enqueue(rest, about);
  }

  /** A queued job's turn (the BullMQ worker); throws if MySQL failed, so BullMQ retries the job. */
  async runQueued(ref: DeliveryJobRef): Promise<ProcessResult> {
    if (!this.options.sender) throw new Error('this process does not send deliveries');
    const result = await this.options.sender.processor.process(ref);
    await this.after(result, ref);
    return result;
  }

  /** Overdue deliveries found in MySQL (the reconciler): back on the queue, orphaned job ids replaced. */
  recover(refs: readonly DeliveryJobRef[]): Promise<void> {
    return this.options.queue.restore(refs.map((ref) => ({ ...ref, runAt: new Date() })));
  }

  /** Takes no more inline runs, and waits for those under way and those leased by commits still in flight. */
  async close(): Promise<void> {
    this.closed = true;
    const slots = this.options.sender?.slots;
    slots?.close();
    await Promise.allSettled([...this.running]);
    while ((slots?.inUse ?? 0) > 0 || this.running.size > 0) {
      // unref: a slot leaked by a bug must not keep the process alive after its drain budget.
      await new Promise((r) => setTimeout(r, 20).unref());
      await Promise.allSettled([...this.running]);
    }
  }

  /** A retry goes to the queue; the next delivery of an ordered key, woken by this one, is dispatched. */
  private async after(result: ProcessResult, ref: DeliveryJobRef): Promise<void> {
    if (result.kind === 'retry') await this.enqueue([result.next], `delivery ${ref.deliveryId}`);
    else if (result.woken) await this.dispatch({ jobs: [result.woken] }, `delivery ${result.woken.deliveryId}`);
  }

  private async enqueue(refs: readonly DeliveryJobRef[], about: string): Promise<void> {
    if (refs.length === 0) return;
    try {
      await this.options.queue.add(refs);
    } catch (err) {
      this.options.onEnqueueFailure?.(refs.length);
      this.options.log?.warn({ about, deliveries: refs.length, err: { message: (err as Error).message } }, 'deliveries committed but not enqueued; the reconciler will enqueue them');
    }
  }

  /** Runs one delivery in a slot it holds, and frees the slot when the run ends. */
  private start(ref: DeliveryJobRef, work: () => Promise<ProcessResult>): void {
    const slots = this.options.sender?.slots;
    // Begun on the next turn of the event loop, so the committing request answers first and its
    // caller's latency does not include signing and sending. Detached from that request's trace
    // context: the attempt's span joins the message's trace.
    const run = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => context.with(ROOT_CONTEXT, work))
      .then(
        (result) => this.after(result, ref),
        async (err: Error) => {
          // MySQL refused the claim or the result: the queue takes it (after the lease, if one was
          // taken); if Redis refuses too, the reconciler is the way back.
          this.options.log?.warn({ deliveryId: ref.deliveryId, err: { message: err.message } }, 'inline delivery failed; enqueued instead');
          await this.enqueue([ref], `delivery ${ref.deliveryId}`);
        },
      )
      .finally(() => slots?.give(1));
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }
}
