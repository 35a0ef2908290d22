import type { DeliveryRepository } from '@herald/db';
import type { DeliveryDispatcher } from './delivery.dispatcher';

export interface ReconcilerOptions {
  intervalMs: number;
  /** Only deliveries overdue by this much are touched, so normal scheduling is left alone. */
  graceMs: number;
  batchSize: number;
  log?: { warn: (obj: object, msg: string) => void };
}

/**
 * MySQL is the truth. Every interval, pending deliveries that are overdue and not leased are
 * (re-)enqueued with their deterministic job ids: a job Redis lost (wipe, restart without
 * persistence, a crash between commit and enqueue, a worker killed mid-send) comes back, and one
 * still queued is left as it is. Every replica may run it; the adds are idempotent.
 */
export class Reconciler {
  private timer?: NodeJS.Timeout;
  private running?: Promise<number>;

  constructor(
    private readonly deliveries: Pick<DeliveryRepository, 'overdue'>,
    private readonly dispatcher: Pick<DeliveryDispatcher, 'recover'>,
    private readonly options: ReconcilerOptions,
  ) {}

  start(): void {
    const tick = () => {
      this.running = this.sweep()
        .catch((err: Error) => {
          this.options.log?.warn({ err: { message: err.message } }, 'reconciler sweep failed; retrying next interval');
          return 0;
        })
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, this.options.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.options.intervalMs);
  }

  /** One pass of at most one batch; returns how many deliveries it handed to the queue. */
  async sweep(): Promise<number> {
    const overdue = await this.deliveries.overdue(this.options.batchSize, this.options.graceMs);
    await this.dispatcher.recover(overdue);
    return overdue.length;
  }

  async stop(): Promise<void> {
    const timer = this.timer;
    this.timer = undefined;
    clearTimeout(timer);
    await this.running;
  }
}
