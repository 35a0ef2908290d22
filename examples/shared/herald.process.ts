import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createConnection, createPool, type Pool } from 'mysql2/promise';

/** The repository root: Herald runs from its source there (tsx), as `npm run dev` does. */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const MYSQL_SERVER = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
export const REDIS_URL = process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const AMQP_URL = process.env.HERALD_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

// Example-only credentials, generated per run: they guard nothing outside it.
export interface HeraldKeys {
  admin: string;
  producer: string;
  checkSecret: string;
}

export interface RunningHerald {
  url: string;
  keys: HeraldKeys;
  databaseName: string;
  child: ChildProcess;
  output: () => string;
  /** Stops the process (SIGTERM, then SIGKILL after 10 s) and drops its database. */
  stop: () => Promise<void>;
}

/**
 * Starts Herald as a real process with a database and a BullMQ prefix of its own, so a run
 * shares MariaDB, Redis and RabbitMQ with anything else without touching it.
 */
export async function startHerald(env: Record<string, string> = {}): Promise<RunningHerald> {
  const tag = randomBytes(4).toString('hex');
  const keys: HeraldKeys = {
    admin: `example-admin-${randomBytes(12).toString('hex')}`,
    producer: `example-producer-${randomBytes(12).toString('hex')}`,
    checkSecret: `whsec_${randomBytes(24).toString('base64')}`,
  };
  const databaseName = `herald_ex_${tag}`;
  const child = spawn(process.execPath, ['--import', 'tsx', 'apps/server/src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: '0',
      DATABASE_URL: `${MYSQL_SERVER}/${databaseName}`,
      REDIS_URL,
      AMQP_URL,
      // The producer is the `default` tenant's: consumers get bare message ids, as from a Herald without tenants.
      HERALD_API_KEYS: `ex-admin:admin:${keys.admin},default:producer:${keys.producer}`,
      HERALD_QUEUE_PREFIX: `herald_ex_${tag}`,
      HERALD_ALLOW_PRIVATE_URLS: 'true',
      HERALD_CHECK_SECRET: keys.checkSecret,
      HERALD_CHECK_SWEEP_INTERVAL_MS: '100',
      HERALD_CHECK_TIMEOUT_MS: '3000',
      HERALD_RECONCILE_INTERVAL_MS: '250',
      HERALD_RECONCILE_GRACE_MS: '500',
      HERALD_SHUTDOWN_TIMEOUT_MS: '5000',
      // On a small shared machine start-up alone can lag the event loop past the shedding
      // threshold; an example should show Herald's semantics, not its overload protection.
      HERALD_MAX_EVENT_LOOP_DELAY_MS: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Herald did not start within 30 s:\n${text}`)), 30_000);
    const onData = () => {
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(text);
      if (match?.[1]) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve(match[1]);
      }
    };
    child.stdout?.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`Herald exited before listening:\n${text}`));
    });
  });
  return {
    url,
    keys,
    databaseName,
    child,
    output: () => text,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      }
      await dropDatabase(databaseName);
    },
  };
}

/** A fresh database for one service of an example, with a pool on it. */
export async function createDatabase(prefix: string): Promise<{ name: string; pool: Pool; drop: () => Promise<void> }> {
  const name = `herald_ex_${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = await createConnection(MYSQL_SERVER);
  await admin.query(`CREATE DATABASE \`${name}\``);
  await admin.end();
  const pool = createPool({ uri: `${MYSQL_SERVER}/${name}`, connectionLimit: 10, timezone: 'Z' });
  return {
    name,
    pool,
    drop: async () => {
      await pool.end().catch(() => undefined);
      await dropDatabase(name);
    },
  };
}

async function dropDatabase(name: string): Promise<void> {
  const admin = await createConnection(MYSQL_SERVER);
  await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await admin.end();
}

/** Polls until `check` returns a truthy value, or fails with `what` after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T> | T, what: string, timeoutMs = 15_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
