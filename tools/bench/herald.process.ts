import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ephemeralPort, launchHerald, waitReady } from '@herald/test-support';

export interface HeraldProcess {
  url: string;
  pid: number;
  child: ChildProcess;
  output: () => string;
  /** SIGTERM and wait for the exit (a CPU profile is written on the way out). */
  stop: () => Promise<void>;
}

export interface StartHeraldOptions {
  /** The built entry point (dist/apps/server/main.js). */
  entry: string;
  env: Record<string, string>;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
  cwd: string;
}

/**
 * The node flags `npm start` runs Herald with (package.json's start script, which the image's
 * CMD runs), so the benchmark measures memory and latency as they ship.
 */
export function startScriptNodeFlags(startScript: string): string[] {
  const match = /^exec node((?:\s+--\S+)*)\s+dist\/apps\/server\/main\.js$/.exec(startScript.trim());
  if (!match) throw new Error(`package.json's start script is not \`exec node [--flags] dist/apps/server/main.js\` (got "${startScript}")`);
  return (match[1] ?? '').trim().split(/\s+/).filter(Boolean);
}

/** Runs Herald as its own process, as in production, and waits until /readyz answers 200. */
export async function startHerald(options: StartHeraldOptions): Promise<HeraldProcess> {
  const port = await ephemeralPort();
  const herald = launchHerald({
    entry: options.entry,
    nodeArgs: options.nodeArgs ?? [],
    cwd: options.cwd,
    env: { NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), ...options.env },
    maxOutputChars: 200_000,
  });
  // Never leave a Herald behind: if the benchmark itself is stopped, so is its child.
  const killChild = () => herald.child.kill('SIGKILL');
  process.once('exit', killChild);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killChild();
      process.exit(130);
    });
  }
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitReady(herald, url, 30_000);
  } catch (error) {
    killChild();
    throw error;
  }
  return { url, pid: herald.pid, child: herald.child, output: herald.output, stop: () => herald.stop(30_000) };
}

/** VmRSS and VmHWM (peak) of a process in MiB, from /proc; undefined once it is gone. */
export function readMemory(pid: number): { rssMiB: number; peakMiB: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system) a process has used, in ms. Per message, it is the figure that a
 * shared, noisy machine disturbs least: waiting for a core does not count.
 */
export function readCpuMs(pid: number): number | undefined {
  try {
    // Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * The pid written in `pidFile` if that process runs on this machine (the local MySQL server's,
 * from the pid file it reports itself, whose CPU per operation the benchmark reports beside
 * Herald's); undefined otherwise, e.g. when the server runs on another host.
 */
export function processFromPidFile(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && readCpuMs(pid) !== undefined ? pid : undefined;
  } catch {
    return undefined;
  }
}

// USER_HZ is 100 on every Linux architecture Node runs on.
const CLOCK_TICKS_PER_SECOND = 100;

/** Samples a process's RSS every `everyMs`; `take()` returns the highest seen since the last take. */
export function sampleMemory(pid: number, everyMs = 200) {
  let max = 0;
  let last = 0;
  const timer = setInterval(() => {
    const m = readMemory(pid);
    if (m) {
      last = m.rssMiB;
      max = Math.max(max, m.rssMiB);
    }
  }, everyMs);
  timer.unref();
  return {
    current: () => readMemory(pid)?.rssMiB ?? last,
    take: () => {
      const seen = Math.max(max, readMemory(pid)?.rssMiB ?? 0);
      max = 0;
      return seen;
    },
    stop: () => clearInterval(timer),
  };
}
