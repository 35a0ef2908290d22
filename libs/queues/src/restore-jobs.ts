import type { JobsOptions, Queue } from 'bullmq';

const LIVE = new Set(['waiting', 'delayed', 'active', 'prioritized', 'waiting-children']);

/**
 * Adds jobs with deterministic ids for the recovery paths (reconciler, check sweeper). BullMQ
 * ignores an add whose job key exists, and after Redis loses keys mid-operation a job hash can
 * survive outside every list and block its id forever: such an orphan is removed first. A live
 * job (queued or running) is left as it is.
 */
export async function restoreJobs(queue: Queue, jobs: ReadonlyArray<{ name: string; data: unknown; opts: JobsOptions }>): Promise<number> {
  const fresh: typeof jobs[number][] = [];
  await Promise.all(
    jobs.map(async (job) => {
      const id = job.opts.jobId as string;
      const state = await queue.getJobState(id);
      if (LIVE.has(state)) return;
      // 'completed', 'failed' or 'unknown' (no list holds it, though its hash may exist).
      await queue.remove(id).catch(() => undefined); // a locked (running) job refuses: fine, it is live
      fresh.push(job);
    }),
  );
  if (fresh.length > 0) await queue.addBulk(fresh);
  return fresh.length;
}
