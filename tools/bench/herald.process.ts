import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { request } from 'undici';

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

/** A port nobody listens on right now. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Runs Herald as its own process, as in production, and waits until /readyz answers 200. */
export async function startHerald(options: StartHeraldOptions): Promise<HeraldProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.entry], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const keep = (d: Buffer) => {
    text += d.toString();
    if (text.length > 200_000) text = text.slice(-100_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Never leave a Herald behind: if the benchmark itself is stopped, so is its child.
  const killChild = () => child.kill('SIGKILL');
  process.once('exit', killChild);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killChild();
      process.exit(130);
    });
  }
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Herald exited before it was ready:\n${text}`);
    try {
      const res = await request(`${url}/readyz`);
      await res.body.dump();
      if (res.statusCode === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Herald was not ready within 30 s:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid ?? 0,
    child,
    output: () => text,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
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
