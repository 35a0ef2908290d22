import { describe, expect, it } from 'vitest';
import { percentile, summarize } from './stats';

describe('bench percentiles', () => {
  it('reports observed values by nearest rank, so a p99 is never interpolated below a real outlier', () => {
    const samples = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(samples, 50)).toBe(50);
    expect(percentile(samples, 99)).toBe(99);
    expect(percentile(samples, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
  });

  it('sorts before ranking and reports nothing for no samples', () => {
    expect(summarize([30, 10, 20])).toEqual({ count: 3, p50: 20, p95: 30, p99: 30, max: 30 });
    expect(summarize([])).toEqual({ count: 0, p50: null, p95: null, p99: null, max: null });
  });
});
