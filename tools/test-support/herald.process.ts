import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: Herald runs from its source there (tsx), as `npm run dev` does. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface LaunchOptions {
  env: Record<string, string>;
  /** A built entry point (dist/apps/server/main.js); by default the source runs through tsx. */
  entry?: string;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
  cwd?: string;
  /** Appends the output to this file instead of keeping it in memory (long runs, many restarts). */
  logFile?: string;
  /** Kept output is trimmed to its last half once it grows past this many characters. */
  maxOutputChars?: number;
  /** Extra arguments after the entry point, e.g. `migrate`. */
  args?: string[];
}

export interface HeraldChild {
  child: ChildProcess;
  pid: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running: () => boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop: (graceMs?: number) => Promise<void>;
  /** kill -9: no drain, no shutdown hook; resolves once the process is gone. */
  kill: () => Promise<void>;
}

/** Spawns one Herald process (the environment is only what is given, plus PATH). */
export function launchHerald(options: LaunchOptions): HeraldChild {
  const entry = options.entry ? [options.entry] : ['--import', 'tsx', 'apps/server/src/main.ts'];
  const out = options.logFile ? openSync(options.logFile, 'a') : 'pipe';
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...entry, ...(options.args ?? [])], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', out, out],
  });
  let text = '';
  const limit = options.maxOutputChars ?? Infinity;
  const keep = (d: Buffer) => {
    text += d.toString();
    if (text.length > limit) text = text.slice(-Math.floor(limit / 2));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const running = () => child.exitCode === null && child.signalCode === null;
  const output = options.logFile ? () => readLog(options.logFile!) : () => text;
  return {
    child,
    pid: child.pid ?? 0,
    output,
    exited,
    running,
    stop: async (graceMs = 30_000) => {
      if (running()) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    kill: async () => {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
  };
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Waits for Herald's "Server listening at" line (it was started with PORT=0) and returns the URL.
 * Without `timeoutMs` it waits until the line comes or the process exits (a caller's own deadline,
 * such as a test's timeout, bounds it): start-up takes as long as the machine's load makes it.
 */
export function listeningUrl(herald: HeraldChild, timeoutMs?: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const found = () => /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(herald.output())?.[1];
    const done = (fn: () => void) => {
      clearTimeout(timer);
      herald.child.stdout?.off('data', onData);
      fn();
    };
    const onData = () => {
      const url = found();
      if (url) done(() => resolve(url));
    };
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => done(() => reject(new Error(`Herald did not start within ${timeoutMs / 1000} s:\n${herald.output()}`))), timeoutMs);
    herald.child.stdout?.on('data', onData);
    onData();
    void herald.exited.then(() => done(() => reject(new Error(`Herald exited before listening:\n${herald.output()}`))));
  });
}

/** /readyz answers 200: MySQL, Redis (and RabbitMQ when used) are reachable from that process. */
export async function isReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** Polls /readyz until it answers 200; fails if the process exits first or the time runs out. */
export async function waitReady(herald: HeraldChild, url: string, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!herald.running()) throw new Error(`Herald exited before it was ready:\n${tail(herald.output())}`);
    if (await isReady(url)) return;
    if (Date.now() > deadline) throw new Error(`Herald was not ready within ${timeoutMs / 1000} s:\n${tail(herald.output())}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const tail = (text: string, lines = 30) => text.trimEnd().split('\n').slice(-lines).join('\n');

/** A port nobody listens on right now (the kernel picks it). */
export async function ephemeralPort(): Promise<number> {
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

/**
 * Bundles Herald's source (as apps/server/build.mjs does) into `dir` under the repository, so
 * npm packages resolve from node_modules, with the migrations beside it. Starting from the bundle
 * spares every process the TypeScript transform, which takes seconds of CPU on a busy machine.
 */
export async function bundleHerald(dir: string): Promise<string> {
  const { build } = await import('esbuild');
  const outfile = join(dir, 'main.js');
  await build({
    entryPoints: [join(REPO_ROOT, 'apps/server/src/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20.19',
    // As build.mjs: drizzle-orm bundled (its modules cost Node 24 ~190 MiB to load one by one).
    plugins: [
      {
        name: 'external-packages',
        setup(b) {
          b.onResolve({ filter: /^[^./]/ }, (args) => (/^(@herald|drizzle-orm)(\/|$)/.test(args.path) ? undefined : { path: args.path, external: true }));
        },
      },
    ],
    tsconfig: join(REPO_ROOT, 'tsconfig.json'),
    sourcemap: true,
    logLevel: 'warning',
  });
  cpSync(join(REPO_ROOT, 'libs/db/migrations'), join(dir, 'migrations'), { recursive: true });
  return outfile;
}
