/** What one load run saw: successes, failures (with a few examples), and when it ran. */
export interface LoadResult {
  ok: number;
  errors: number;
  errorSamples: string[];
  /** performance.now() at start and when the last operation finished. */
  startedAt: number;
  endedAt: number;
  /** Seconds of offered load (the measured window). */
  seconds: number;
}

export type Operation = (seq: number) => Promise<void>;

function tracker(durationMs: number) {
  const result: LoadResult = { ok: 0, errors: 0, errorSamples: [], startedAt: performance.now(), endedAt: 0, seconds: durationMs / 1000 };
  const run = async (op: Operation, seq: number) => {
    try {
      await op(seq);
      result.ok++;
    } catch (err) {
      result.errors++;
      if (result.errorSamples.length < 5) result.errorSamples.push((err as Error).message.slice(0, 300));
    }
  };
  return { result, run, deadline: result.startedAt + durationMs };
}

/**
 * Closed loop: `concurrency` workers each run `op` back to back until the window closes. This is
 * what "concurrency N" means in the table, for Herald and its baselines alike.
 */
export async function closedLoop(concurrency: number, durationMs: number, op: Operation): Promise<LoadResult> {
  const { result, run, deadline } = tracker(durationMs);
  let seq = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) await run(op, seq++);
    }),
  );
  result.endedAt = performance.now();
  return result;
}

/**
 * Open loop: starts `op` at a fixed rate whatever the latency (as real producers do), with at
 * most `maxInFlight` running; a start skipped because of that bound counts as an error.
 */
export async function openLoop(ratePerSecond: number, durationMs: number, op: Operation, maxInFlight = 512): Promise<LoadResult> {
  const { result, run, deadline } = tracker(durationMs);
  const inFlight = new Set<Promise<void>>();
  const intervalMs = 1000 / ratePerSecond;
  let seq = 0;
  let next = result.startedAt;
  while (next < deadline) {
    const now = performance.now();
    // Catch up on starts that fell due while the loop waited (timers are coarse).
    while (next <= now && next < deadline) {
      if (inFlight.size >= maxInFlight) {
        result.errors++;
        if (result.errorSamples.length < 5) result.errorSamples.push(`more than ${maxInFlight} operations in flight`);
      } else {
        const p: Promise<void> = run(op, seq++).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      next += intervalMs;
    }
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(next - performance.now(), 5))));
  }
  await Promise.all(inFlight);
  result.endedAt = performance.now();
  return result;
}
