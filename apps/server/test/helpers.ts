import { randomBytes } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import type { FastifyInstance } from 'fastify';
import { afterAll } from 'vitest';
import { migrate } from '@herald/db';
import { deleteKeysUnder } from '@herald/test-support';
import { buildApp } from '../src/app';
import { parseConfig } from '../src/config';

export const MYSQL_SERVER = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
export const REDIS_URL = process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

// Test-only tokens; they guard nothing outside these tests. The producer is the `default`
// tenant's, whose deliveries carry bare message ids (tenants have their own tests).
export const ADMIN_TOKEN = 'test-admin-token-0000000000000000';
export const PRODUCER_TOKEN = 'test-producer-token-000000000000';
export const API_KEYS = `ops:admin:${ADMIN_TOKEN},default:producer:${PRODUCER_TOKEN}`;

// A test-only check-signing secret.
export const TEST_CHECK_SECRET = 'whsec_dGVzdC1vbmx5LWNoZWNrLXNlY3JldC0wMTIzNDU2Nzg5';

export const asProducer = { authorization: `Bearer ${PRODUCER_TOKEN}` };
export const asAdmin = { authorization: `Bearer ${ADMIN_TOKEN}` };

// Names carry the run's id (set by the global setup), which checks at the end that none is left.
const RUN = process.env.HERALD_TEST_RUN ?? randomBytes(3).toString('hex');

const prefixes = new Set<string>();
/** A Redis key prefix (HERALD_QUEUE_PREFIX) of its own; its keys are deleted when the file ends. */
export function testPrefix(): string {
  const prefix = `herald_t_${RUN}_${randomBytes(3).toString('hex')}`;
  prefixes.add(prefix);
  return prefix;
}
// Registered on import, before any test file hook, so it runs after them (after hooks run in
// reverse order): once the file's apps are closed and its processes are gone.
afterAll(async () => {
  for (const prefix of prefixes) await deleteKeysUnder(REDIS_URL, prefix);
  prefixes.clear();
});

/** A name under this run's prefix, for what a test creates and removes by itself (the global setup checks). */
export function testName(kind: string): string {
  return `herald_t_${RUN}_${kind}_${randomBytes(3).toString('hex')}`;
}

/** A database of its own for one test file, dropped afterwards. */
export async function createTestDatabase(prefix: string, options: { migrate?: boolean } = {}): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = `herald_t_${RUN}_${prefix}_${randomBytes(4).toString('hex')}`;
  const url = `${MYSQL_SERVER}/${name}`;
  // migrate: false names a database that does not exist yet (Herald creates it at start-up).
  if (options.migrate !== false) await migrate({ url });
  return {
    url,
    name,
    drop: async () => {
      const c = await createConnection(MYSQL_SERVER);
      await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await c.end();
    },
  };
}

export function testEnv(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    HERALD_API_KEYS: API_KEYS,
    HERALD_QUEUE_PREFIX: testPrefix(),
    // Test endpoints live on 127.0.0.1; the refusal itself is tested with this off.
    HERALD_ALLOW_PRIVATE_URLS: 'true',
    HERALD_CHECK_SECRET: TEST_CHECK_SECRET,
    // Load shedding has its own test (limits.faults); elsewhere a busy machine's event-loop lag
    // must not turn the answers under test into 503s.
    HERALD_MAX_EVENT_LOOP_DELAY_MS: '0',
    ...extra,
  };
}

export async function buildTestApp(databaseUrl: string, extra: Record<string, string> = {}): Promise<FastifyInstance> {
  const app = await buildApp(parseConfig(testEnv(databaseUrl, extra)), { logger: false });
  await app.ready();
  return app;
}

export const prepareBody = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  topic: 'order.paid',
  key: `key-${id}`,
  payload: { orderId: id, amount: 4200, items: [{ sku: 'a', qty: 2 }] },
  checkUrl: 'http://127.0.0.1:9/herald/check',
  ...extra,
});

/** The value of one series in Prometheus text, e.g. `herald_checks_total{answer="commit"}`. */
export function metricValue(text: string, series: string): number {
  return Number(new RegExp(`^${series.replace(/[{}"/]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
}
