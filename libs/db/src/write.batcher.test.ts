import { describe, expect, it, vi } from 'vitest';
import { WriteBatcher, WriteQueueFullError } from './write.batcher';

describe('WriteBatcher', () => {
  it('sends a lone write at once and groups the writes that arrive while a batch runs', async () => {
    const batches: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const batcher = new WriteBatcher<number, number>(
      async (inputs) => {
        batches.push(inputs);
        if (batches.length === 1) await gate;
        return inputs.map((i) => i * 10);
      },
      { maxInFlight: 1, maxBatch: 100 },
    );
    const first = batcher.submit(1);
    const rest = [2, 3, 4].map((i) => batcher.submit(i));
    expect(batches).toEqual([[1]]);
    release();
    expect(await Promise.all([first, ...rest])).toEqual([10, 20, 30, 40]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
  });

  it('keeps batches within their size and weight limits', async () => {
    const batches: string[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const batcher = new WriteBatcher<string, string>(
      async (inputs) => {
        batches.push(inputs);
        if (batches.length === 1) await gate;
        return inputs;
      },
      { maxInFlight: 1, maxBatch: 3, maxWeight: 5, weight: (s) => s.length },
    );
    const all = ['x', 'aa', 'bb', 'cc', 'd', 'e', 'f', 'g'].map((s) => batcher.submit(s));
    release();
    await Promise.all(all);
    expect(batches).toEqual([['x'], ['aa', 'bb'], ['cc', 'd', 'e'], ['f', 'g']]);
  });

  it('fails only the batch whose run threw, and carries on with the next', async () => {
    let calls = 0;
    const batcher = new WriteBatcher<number, number>(
      async (inputs) => {
        calls++;
        if (inputs.includes(13)) throw new Error('unlucky');
        return inputs;
      },
      { maxInFlight: 1, maxBatch: 1 },
    );
    const results = await Promise.allSettled([batcher.submit(13), batcher.submit(14)]);
    expect(results[0]).toMatchObject({ status: 'rejected' });
    expect(results[1]).toEqual({ status: 'fulfilled', value: 14 });
    expect(calls).toBe(2);
  });

  it('refuses writes beyond maxQueued at once, and takes them again once the queue drains', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const batcher = new WriteBatcher<number, number>(
      async (inputs) => {
        await gate;
        return inputs;
      },
      { maxInFlight: 1, maxBatch: 10, maxQueued: 2 },
    );
    const running = batcher.submit(1);
    const queued = [batcher.submit(2), batcher.submit(3)];
    await expect(batcher.submit(4)).rejects.toBeInstanceOf(WriteQueueFullError);
    release();
    expect(await Promise.all([running, ...queued])).toEqual([1, 2, 3]);
    expect(await batcher.submit(5)).toBe(5);
  });

  it('with stalledAfterMs, refuses writes beyond maxQueued while they wait behind a quick batch, though slots are free', async () => {
    // Quick batches run one at a time: with more arriving than one batch at a time can write,
    // the queue would otherwise grow without bound (and its wait with it) instead of shedding.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const batcher = new WriteBatcher<number, number>(
      async (inputs) => {
        await gate;
        return inputs;
      },
      { maxInFlight: 4, maxBatch: 10, maxQueued: 2, stalledAfterMs: 60_000 },
    );
    const running = batcher.submit(1);
    const queued = [batcher.submit(2), batcher.submit(3)];
    const fourth = batcher.submit(4).then(() => 'queued', (error: unknown) => error);
    expect(await Promise.race([fourth, new Promise((r) => setTimeout(() => r('queued'), 50))])).toBeInstanceOf(WriteQueueFullError);
    release();
    expect(await Promise.all([running, ...queued])).toEqual([1, 2, 3]);
    expect(await batcher.submit(5)).toBe(5);
  });

  it('reads a weight limit given as a function for each batch', async () => {
    const batches: string[][] = [];
    let limit = 2;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const batcher = new WriteBatcher<string, string>(
      async (inputs) => {
        batches.push(inputs);
        if (batches.length === 1) await gate;
        return inputs;
      },
      { maxInFlight: 1, maxBatch: 10, maxWeight: () => limit, weight: (s) => s.length },
    );
    const all = ['a', 'b', 'c', 'd', 'e'].map((s) => batcher.submit(s));
    limit = 4;
    release();
    await Promise.all(all);
    expect(batches).toEqual([['a'], ['b', 'c', 'd', 'e']]);
  });

  it('with stalledAfterMs, runs one batch at a time while batches are quick, and starts more only once a batch is stuck', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
    const batches: number[][] = [];
    const gates = new Map<number, () => void>();
    const batcher = new WriteBatcher<number, number>(
      async (inputs) => {
        batches.push(inputs);
        await new Promise<void>((r) => gates.set(inputs[0] as number, r));
        return inputs;
      },
      { maxInFlight: 3, maxBatch: 100, stalledAfterMs: 100 },
    );
    // A fake clock: the test is about elapsed time, which a busy machine must not stretch.
    const sleep = (ms: number) => vi.advanceTimersByTimeAsync(ms);
    const answers = [batcher.submit(1), batcher.submit(2), batcher.submit(3)];
    await sleep(30);
    // The first is young: the others wait for it, as with one slot.
    expect(batches).toEqual([[1]]);
    await sleep(100);
    // It has run past 100 ms: the waiting writes start as the next batch beside it.
    expect(batches).toEqual([[1], [2, 3]]);
    answers.push(batcher.submit(4), batcher.submit(5));
    await sleep(30);
    expect(batches).toEqual([[1], [2, 3]]);
    // A quick batch ending lets the next one start at once.
    gates.get(2)?.();
    await sleep(5);
    expect(batches).toEqual([[1], [2, 3], [4, 5]]);
    answers.push(batcher.submit(6));
    await sleep(150);
    // Both running batches stalled: a third starts, and no more than maxInFlight run at once.
    expect(batches).toEqual([[1], [2, 3], [4, 5], [6]]);
    answers.push(batcher.submit(7));
    await sleep(150);
    expect(batches).toHaveLength(4);
    for (const first of [1, 4, 6]) gates.get(first)?.();
    await sleep(5);
    gates.get(7)?.();
    expect(await Promise.all(answers)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    } finally {
      vi.useRealTimers();
    }
  });
});
