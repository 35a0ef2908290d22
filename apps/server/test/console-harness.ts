import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { Redis } from 'ioredis';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app';
import { parseConfig } from '../src/config';
import { createTestDatabase, REDIS_URL, testEnv, testPrefix } from './helpers';

// Debian's chromium driven by playwright-core: no browser download.
const CHROMIUM = process.env.HERALD_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Screenshots go here when HERALD_CONSOLE_SCREENSHOTS names a directory (docs/console). */
export const SCREENSHOTS = process.env.HERALD_CONSOLE_SCREENSHOTS;

/**
 * A real Herald (API and worker) on its own database and queue prefix, serving a console built
 * for this test file into a directory of its own, and a Chromium to drive it.
 */
export async function startConsoleHarness(name: string, env: Record<string, string> = {}) {
  const consoleDir = await mkdtemp(join(tmpdir(), `herald-console-${name}-`));
  await build({ configFile: fileURLToPath(new URL('../../console/vite.config.ts', import.meta.url)), logLevel: 'warn', build: { outDir: consoleDir, emptyOutDir: true } });
  const db = await createTestDatabase(name);
  const prefix = testPrefix();
  const app: FastifyInstance = await buildApp(parseConfig(testEnv(db.url, { HERALD_QUEUE_PREFIX: prefix, HERALD_CHECK_SWEEP_INTERVAL_MS: '100', ...env })), { logger: false, consoleDir });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  // A browser that does not start (Chromium missing) must not leave the database and app behind.
  const browser: Browser = await chromium
    .launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    .catch(async (err: unknown) => {
      await app.close();
      await db.drop();
      throw err;
    });
  /** Every request the page makes, to prove it talks to Herald alone. */
  const requested: string[] = [];
  const newPage = async (): Promise<Page> => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
    page.on('request', (r) => requested.push(r.url()));
    await page.goto(`${base}/console/`);
    return page;
  };
  const close = async () => {
    await browser.close();
    await app.close();
    await db.drop();
    await rm(consoleDir, { recursive: true, force: true });
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  };
  return { app, db, base, newPage, requested, close };
}

export async function signIn(page: Page, token: string) {
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}
