import { describe, expect, it } from 'vitest';
import type { DeliveryJobRef } from '@herald/db';
import { InlineDispatcher } from './inline.dispatcher';
import type { ProcessResult } from './deliver.processor';

const ref = (deliveryId: number, runAt: Date): DeliveryJobRef => ({ deliveryId, generation: 0, attempt: 0, runAt });

/** A processor whose runs end when the test says so. */
function heldProcessor() {
  const runs = new Map<number, { resolve: (r: ProcessResult) => void; reject: (e: Error) => void }>();
  return {
    runs,
    process: (r: DeliveryJobRef) => new Promise<ProcessResult>((resolve, reject) => runs.set(r.deliveryId, { resolve, reject })),
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
});
