import { describe, expect, it } from 'vitest';
import type { AttemptContext, DeliveryJobRef } from '@herald/db';
import { InlineDispatcher } from './inline.dispatcher';
import type { ProcessResult } from './deliver.processor';

const ref = (deliveryId: number, runAt: Date): DeliveryJobRef => ({ deliveryId, generation: 0, attempt: 0, runAt });

/** A processor whose runs end when the test says so. */
function heldProcessor() {
  const runs = new Map<number, { resolve: (r: ProcessResult) => void; reject: (e: Error) => void }>();
  return {
    runs,
    process: (r: DeliveryJobRef) => new Promise<ProcessResult>((resolve, reject) => runs.set(r.deliveryId, { resolve, reject })),
    attemptLeased: (r: DeliveryJobRef, _context: AttemptContext) => new Promise<ProcessResult>((resolve, reject) => runs.set(-r.deliveryId, { resolve, reject })),
  };
}

describe('InlineDispatcher', () => {
  it('runs due deliveries up to its limit and returns the rest (not due, over the limit, after close) for the queue', async () => {
    const processor = heldProcessor();
    const enqueued: number[] = [];
    const inline = new InlineDispatcher(processor, { maxInFlight: 2, enqueue: async (refs) => void enqueued.push(...refs.map((r) => r.deliveryId)) });
    const now = Date.now();
    const rest = inline.take([ref(1, new Date(now)), ref(2, new Date(now + 5_000)), ref(3, new Date(now - 10)), ref(4, new Date(now))], now);
    expect(rest.map((r) => r.deliveryId)).toEqual([2, 4]);
    expect([...processor.runs.keys()]).toEqual([1, 3]);

    // A run that fails (MySQL refused the claim, say) goes to the queue; a finished one frees its slot.
    processor.runs.get(1)?.reject(new Error('connection lost'));
    processor.runs.get(3)?.resolve('delivered');
    await new Promise((r) => setTimeout(r, 10));
    expect(enqueued).toEqual([1]);
    expect(inline.take([ref(5, new Date(now))], now)).toEqual([]);

    // close waits for the run under way and takes nothing more.
    let closed = false;
    const closing = inline.close().then(() => (closed = true));
    expect(inline.take([ref(6, new Date(now))], now).map((r) => r.deliveryId)).toEqual([6]);
    await new Promise((r) => setTimeout(r, 10));
    expect(closed).toBe(false);
    processor.runs.get(5)?.resolve('skipped');
    await closing;
    expect(closed).toBe(true);
  });

  it('promises slots to leased deliveries exactly: a promised slot is not given to the queue path, and comes back when run or released', async () => {
    const processor = heldProcessor();
    const inline = new InlineDispatcher(processor, { maxInFlight: 3, enqueue: async () => undefined });
    const now = Date.now();
    const context = {} as AttemptContext;
    expect(inline.reserve(2)).toBe(2);
    expect(inline.reserve(5)).toBe(1);
    expect(inline.reserve(1)).toBe(0);
    // Every slot is promised: a due job goes to the queue.
    expect(inline.take([ref(1, new Date(now))], now).map((r) => r.deliveryId)).toEqual([1]);

    // One transaction committed (its lease is held: run without a claim), one rolled back.
    inline.runClaimed(ref(7, new Date(now)), context);
    inline.release(2);
    expect([...processor.runs.keys()]).toEqual([-7]);
    expect(inline.take([ref(2, new Date(now)), ref(3, new Date(now)), ref(4, new Date(now))], now).map((r) => r.deliveryId)).toEqual([4]);

    // close waits for promised slots too, then for the run they became.
    expect(inline.reserve(1)).toBe(0);
    processor.runs.get(2)?.resolve('delivered');
    await new Promise((r) => setTimeout(r, 10));
    expect(inline.reserve(1)).toBe(1);
    let closed = false;
    const closing = inline.close().then(() => (closed = true));
    expect(inline.reserve(1)).toBe(0);
    for (const id of [-7, 3]) processor.runs.get(id)?.resolve('delivered');
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    inline.runClaimed(ref(8, new Date(now)), context);
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    processor.runs.get(-8)?.resolve('delivered');
    await closing;
    expect(closed).toBe(true);
  });
});
