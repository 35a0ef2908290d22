import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, onTestFinished } from 'vitest';
import { REPO_ROOT, bundleHerald, launchHerald, listeningUrl, type HeraldChild } from '@herald/test-support';
// Imported first so that its clean-up (Redis keys) runs after these processes are gone.
import './helpers';

export interface RunningServer extends HeraldChild {
  url: string;
}

// One bundle of the source per test file, built on first use: a process started from it is up in
// a fraction of the time (and CPU) one that compiles the TypeScript with tsx takes.
let bundle: Promise<string> | undefined;
const bundleDir = join(REPO_ROOT, 'dist', 'test-server', randomBytes(4).toString('hex'));
const entry = () => (bundle ??= (mkdirSync(bundleDir, { recursive: true }), bundleHerald(bundleDir)));

// A test that fails half-way would leave its servers running, taking CPU from the tests after it
// and polling a dropped database: each is killed when its test ends, and waited for.
const live = new Set<HeraldChild>();
afterAll(async () => {
  await Promise.all([...live].map((h) => h.kill()));
  rmSync(bundleDir, { recursive: true, force: true });
});

/**
 * Starts Herald as a real process and waits until it listens, or fails as soon as it exits; no
 * fixed deadline of its own, since start-up on a busy machine takes what the CPU allows.
 */
export async function startServer(env: Record<string, string>, options: { entry?: string } = {}): Promise<RunningServer> {
  const herald = await spawnServer({ HOST: '127.0.0.1', PORT: '0', ...env }, [], options.entry);
  return { ...herald, url: await listeningUrl(herald) };
}

/** Spawns the server process (`main.js [args]`; another build's with `entryFile`) without waiting for it to listen. */
export async function spawnServer(env: Record<string, string>, args: string[] = [], entryFile?: string): Promise<HeraldChild> {
  const herald = launchHerald({ entry: entryFile ?? (await entry()), env: { NODE_ENV: 'test', ...env }, args });
  live.add(herald);
  void herald.exited.then(() => live.delete(herald));
  try {
    onTestFinished(() => herald.kill());
  } catch {
    // started outside a test (a beforeAll): killed when the file ends
  }
  return herald;
}
