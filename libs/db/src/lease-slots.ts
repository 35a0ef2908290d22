import { deliveryLeaseMs, type SendTimeouts, type Target } from '@herald/domain';

/**
 * The delivery slots of a process that sends deliveries itself as soon as their commit is
 * answered. A fan-out takes slots for the deliveries it creates already leased to this process;
 * the dispatcher takes slots for the others it runs at once, and frees each when its run ends.
 * One synchronous count, shared by both through their constructors, so it is exact however
 * many transactions run at once.
 */
export class LeaseSlots {
  private used = 0;
  private closed = false;

  constructor(
    readonly capacity: number,
    private readonly timeouts: SendTimeouts,
  ) {}

  /** Takes up to `wanted` slots; returns how many it took (none once closed). */
  take(wanted: number): number {
    const granted = this.closed ? 0 : Math.max(0, Math.min(wanted, this.capacity - this.used));
    this.used += granted;
    return granted;
  }

  give(count: number): void {
    this.used = Math.max(0, this.used - count);
  }

  /** Slots taken and not given back: runs under way, and leases of transactions still committing. */
  get inUse(): number {
    return this.used;
  }

  /** How long a lease on a delivery to `target` lasts (see `deliveryLeaseMs`). */
  leaseMs(target: Target | undefined): number {
    return deliveryLeaseMs(target, this.timeouts);
  }

  /** Grants nothing more; slots already taken are still given back. */
  close(): void {
    this.closed = true;
  }
}
