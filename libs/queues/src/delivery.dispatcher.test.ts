import { describe, expect, it } from 'vitest';
import { LeaseSlots, type AttemptContext, type LeasedDelivery } from '@herald/db';
import type { DeliveryJobRef } from '@herald/domain';
import type { ProcessResult } from './deliver.processor';
import { DeliveryDispatcher } from './delivery.dispatcher';
import type { DeliveryQueue } from './delivery.queue';

const ref = (deliveryId: number, runAt: Date, attempt = 0): DeliveryJobRef => ({ deliveryId, generation: 0, attempt, runAt });
const TIMEOUTS = { webhookTimeoutMs: 2_000, amqpConfirmTimeoutMs: 2_000 };
const leased = (job: DeliveryJobRef): LeasedDelivery => ({ job, context: {} as AttemptContext as LeasedDelivery['context'] });
const settle = (ms = 10) => new Promise((r) => setTimeout(r, ms));
/** A run begins on the event loop's next turn (after the committing request has answered). */
const turn = () => new Promise((r) => setImmediate(r));

/** A processor whose runs end when the test says so; leased runs are keyed by the negated id. */
function heldProcessor() {
  const runs = new Map<number, { resolve: (r: ProcessResult) => void; reject: (e: Error) => void }>();
  return {
    runs,
    process: (r: DeliveryJobRef) => new Promise<ProcessResult>((resolve, reject) => runs.set(r.deliveryId, { resolve, reject })),
    attemptLeased: (r: DeliveryJobRef, _context: AttemptContext) => new Promise<ProcessResult>((resolve, reject) => runs.set(-r.deliveryId, { resolve, reject })),
  };
}

/** The queue the dispatcher hands what it does not run: records what it was given. */
function recordingQueue() {
  const enqueued: DeliveryJobRef[] = [];
  const queue = { add: async (refs: readonly DeliveryJobRef[]) => void enqueued.push(...refs), restore: async () => undefined } as unknown as DeliveryQueue;
  return { queue, enqueued };
}

describe('DeliveryDispatcher', () => {
  it('queues leased deliveries it cannot send (a process without a sender) instead of dropping them', async () => {
    const { queue, enqueued } = recordingQueue();
    const warnings: string[] = [];
    const log = { child: () => log, debug: () => undefined, info: () => undefined, warn: (_o: object, msg: string) => void warnings.push(msg) };
    const dispatcher = new DeliveryDispatcher({ queue, log });
    const now = new Date();
    await dispatcher.dispatch({ jobs: [ref(1, now)], leased: [leased(ref(2, now))] }, 'm-0');
    expect(enqueued.map((r) => r.deliveryId).sort()).toEqual([1, 2]);
    expect(warnings).toHaveLength(1);
  });

  it('runs due deliveries in its free slots and queues the rest (not due, over the slots, after close)', async () => {
    const processor = heldProcessor();
    const { queue, enqueued } = recordingQueue();
    const slots = new LeaseSlots(2, TIMEOUTS);
    const dispatcher = new DeliveryDispatcher({ queue, sender: { processor, slots } });
    const now = Date.now();
    await dispatcher.dispatch({ jobs: [ref(1, new Date(now)), ref(2, new Date(now + 5_000)), ref(3, new Date(now - 10)), ref(4, new Date(now))] }, 'm-1');
    // The slots are taken at once, but the runs begin only after the caller's turn (its answer).
    expect(slots.inUse).toBe(2);
    expect(processor.runs.size).toBe(0);
    await turn();
    expect(enqueued.map((r) => r.deliveryId)).toEqual([2, 4]);
    expect([...processor.runs.keys()]).toEqual([1, 3]);
    expect(slots.inUse).toBe(2);

    // A run that fails (MySQL refused the claim, say) goes to the queue; a finished one frees its slot.
    processor.runs.get(1)?.reject(new Error('connection lost'));
    processor.runs.get(3)?.resolve({ kind: 'delivered' });
    await settle();
    expect(enqueued.map((r) => r.deliveryId)).toEqual([2, 4, 1]);
    expect(slots.inUse).toBe(0);
    await dispatcher.dispatch({ jobs: [ref(5, new Date(now))] }, 'm-5');
    await turn();
    expect(enqueued.map((r) => r.deliveryId)).toEqual([2, 4, 1]);
    expect(processor.runs.has(5)).toBe(true);

    // close waits for the run under way and takes nothing more.
    let closed = false;
    const closing = dispatcher.close().then(() => (closed = true));
    await dispatcher.dispatch({ jobs: [ref(6, new Date(now))] }, 'm-6');
    await turn();
    expect(enqueued.map((r) => r.deliveryId)).toEqual([2, 4, 1, 6]);
    expect(processor.runs.has(6)).toBe(false);
    await settle();
    expect(closed).toBe(false);
    processor.runs.get(5)?.resolve({ kind: 'skipped' });
    await closing;
    expect(closed).toBe(true);
    expect(slots.inUse).toBe(0);
  });

  it('waits on close for a run that was dispatched but has not begun yet', async () => {
    const processor = heldProcessor();
    const { queue } = recordingQueue();
    const slots = new LeaseSlots(2, TIMEOUTS);
    const dispatcher = new DeliveryDispatcher({ queue, sender: { processor, slots } });
    await dispatcher.dispatch({ jobs: [ref(1, new Date())] }, 'm-1');
    let closed = false;
    const closing = dispatcher.close().then(() => (closed = true));
    await settle();
    // It began after close was called, and close waits for it to end.
    expect(processor.runs.has(1)).toBe(true);
    expect(closed).toBe(false);
    processor.runs.get(1)?.resolve({ kind: 'delivered' });
    await closing;
    expect(slots.inUse).toBe(0);
  });

  it('shares its slots exactly with the transactions that lease deliveries: a taken slot is not given to a due job, and comes back when its run ends or its transaction fails', async () => {
    const processor = heldProcessor();
    const { queue, enqueued } = recordingQueue();
    const slots = new LeaseSlots(3, TIMEOUTS);
    const dispatcher = new DeliveryDispatcher({ queue, sender: { processor, slots } });
    const now = Date.now();
    // Two transactions take slots for the deliveries they lease (as a fan-out does).
    expect(slots.take(2)).toBe(2);
    expect(slots.take(5)).toBe(1);
    expect(slots.take(1)).toBe(0);
    // Every slot is taken: a due job goes to the queue.
    await dispatcher.dispatch({ jobs: [ref(1, new Date(now))] }, 'm-1');
    await turn();
    expect(enqueued.map((r) => r.deliveryId)).toEqual([1]);

    // One transaction committed (its lease is held: run without a claim, in the slot it took), one rolled back.
    await dispatcher.dispatch({ jobs: [], leased: [leased(ref(7, new Date(now)))] }, 'm-7');
    await turn();
    slots.give(2);
    expect([...processor.runs.keys()]).toEqual([-7]);
    expect(slots.inUse).toBe(1);
    await dispatcher.dispatch({ jobs: [ref(2, new Date(now)), ref(3, new Date(now)), ref(4, new Date(now))] }, 'm-2');
    await turn();
    expect(enqueued.map((r) => r.deliveryId)).toEqual([1, 4]);

    // close waits for slots still taken (a transaction committing its leases), then for the run they became.
    expect(slots.take(1)).toBe(0);
    processor.runs.get(2)?.resolve({ kind: 'delivered' });
    await settle();
    expect(slots.take(1)).toBe(1);
    let closed = false;
    const closing = dispatcher.close().then(() => (closed = true));
    expect(slots.take(1)).toBe(0);
    for (const id of [-7, 3]) processor.runs.get(id)?.resolve({ kind: 'delivered' });
    await settle(50);
    expect(closed).toBe(false);
    expect(slots.inUse).toBe(1);
    // A leased delivery runs even after close began: its lease keeps everyone else off the row.
    await dispatcher.dispatch({ jobs: [], leased: [leased(ref(8, new Date(now)))] }, 'm-8');
    await turn();
    expect(processor.runs.has(-8)).toBe(true);
    await settle(50);
    expect(closed).toBe(false);
    processor.runs.get(-8)?.resolve({ kind: 'delivered' });
    await closing;
    expect(closed).toBe(true);
    expect(slots.inUse).toBe(0);
    expect(enqueued.map((r) => r.deliveryId)).toEqual([1, 4]);
  });

  it('queues the next attempt of a run that asks for a retry, inline, leased or from the queue', async () => {
    const processor = heldProcessor();
    const { queue, enqueued } = recordingQueue();
    const slots = new LeaseSlots(2, TIMEOUTS);
    const dispatcher = new DeliveryDispatcher({ queue, sender: { processor, slots } });
    const now = Date.now();
    const later = new Date(now + 60_000);
    expect(slots.take(1)).toBe(1);
    await dispatcher.dispatch({ jobs: [ref(1, new Date(now))], leased: [leased(ref(2, new Date(now)))] }, 'm-1');
    await turn();
    expect([...processor.runs.keys()].sort()).toEqual([-2, 1]);
    expect(enqueued).toEqual([]);
    processor.runs.get(1)?.resolve({ kind: 'retry', next: ref(1, later, 1) });
    processor.runs.get(-2)?.resolve({ kind: 'retry', next: ref(2, later, 1) });
    await settle();
    expect(enqueued).toEqual([ref(1, later, 1), ref(2, later, 1)]);
    expect(slots.inUse).toBe(0);

    // A queued job's turn: the result is returned to the worker, and a retry queued first.
    const queued = dispatcher.runQueued(ref(3, new Date(now)));
    await settle();
    processor.runs.get(3)?.resolve({ kind: 'retry', next: ref(3, later, 1) });
    expect(await queued).toEqual({ kind: 'retry', next: ref(3, later, 1) });
    expect(enqueued.at(-1)).toEqual(ref(3, later, 1));
    await dispatcher.close();
  });
});
