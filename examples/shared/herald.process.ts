import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createConnection, createPool, type Pool } from 'mysql2/promise';
import { deleteKeysUnder, launchHerald, listeningUrl } from '@herald/test-support';

export { waitFor } from '@herald/test-support';

export const MYSQL_SERVER = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
export const REDIS_URL = process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const AMQP_URL = process.env.HERALD_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
// Under the tests, names carry the run's id, so the run can check that none is left behind.
const NAME_START = process.env.HERALD_TEST_RUN ? `herald_ex_${process.env.HERALD_TEST_RUN}_` : 'herald_ex_';

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
  /** Stops the process (SIGTERM, then SIGKILL after 10 s), drops its database and deletes its Redis keys. */
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
  const databaseName = `${NAME_START}${tag}`;
  const queuePrefix = databaseName;
  const herald = launchHerald({
    env: {
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: '0',
      DATABASE_URL: `${MYSQL_SERVER}/${databaseName}`,
      REDIS_URL,
      AMQP_URL,
      // The producer is the `default` tenant's: consumers get bare message ids, as from a Herald without tenants.
      HERALD_API_KEYS: `ex-admin:admin:${keys.admin},default:producer:${keys.producer}`,
      HERALD_QUEUE_PREFIX: queuePrefix,
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
  });
  const url = await listeningUrl(herald, 30_000);
  return {
    url,
    keys,
    databaseName,
    child: herald.child,
    output: herald.output,
    stop: async () => {
      await herald.stop(10_000);
      await dropDatabase(databaseName);
      await deleteKeysUnder(REDIS_URL, queuePrefix);
    },
  };
}

/** A fresh database for one service of an example, with a pool on it. */
export async function createDatabase(prefix: string): Promise<{ name: string; pool: Pool; drop: () => Promise<void> }> {
  const name = `${NAME_START}${prefix}_${randomBytes(4).toString('hex')}`;
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
