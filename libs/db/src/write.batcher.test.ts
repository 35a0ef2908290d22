import { describe, expect, it } from 'vitest';
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
});
