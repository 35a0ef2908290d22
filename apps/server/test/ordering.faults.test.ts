import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { REDIS_URL, asAdmin, asProducer, buildTestApp, createTestDatabase, testEnv, testPrefix } from './helpers';
import { startServer } from './server-process';
import { deleteKeysUnder, startWebhookSink, waitFor } from '@herald/test-support';

// Per-key order under faults: the head of each key lives in MySQL, so neither kill -9 of the
// sending process nor the loss of every Redis key reorders a key or loses a message.
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase('ordf');
});
afterAll(async () => {
  await db?.drop();
});

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

/** Arrivals at the sink, in order: which message, when, and when it was answered 2xx (if it was). */
type Arrival = { id: string; at: number; okAt?: number };

/**
 * The ordering invariant, per key: the first arrivals follow commit order (`order`, by delivery
 * id), and no message arrives before an earlier one of its key was answered 2xx.
 */
function checkOrder(arrivals: Arrival[], order: string[]): string[] {
  const problems: string[] = [];
  const firsts = order.map((id) => arrivals.find((a) => a.id === id));
  if (firsts.includes(undefined)) problems.push(`never received: ${order.filter((_, i) => !firsts[i]).join(', ')}`);
  for (let i = 1; i < order.length; i++) {
    const firstOk = Math.min(...arrivals.filter((a) => a.id === order[i - 1] && a.okAt !== undefined).map((a) => a.okAt as number));
    if ((firsts[i]?.at ?? Infinity) < firstOk) problems.push(`${order[i]} arrived before ${order[i - 1]} was delivered`);
    if ((firsts[i]?.at ?? Infinity) < (firsts[i - 1]?.at ?? Infinity)) problems.push(`${order[i]} arrived before ${order[i - 1]}`);
  }
  return problems;
}

describe('per-key order under faults', () => {
  it('keeps every key in order, and delivers everything, across kill -9 of the sending process', async () => {
    const env = testEnv(db.url, { HERALD_RECONCILE_INTERVAL_MS: '200', HERALD_RECONCILE_GRACE_MS: '300' });
    const arrivals: Arrival[] = [];
    const sink = await startWebhookSink((hit, res) => {
      const arrival: Arrival = { id: String(hit.headers['webhook-id']), at: performance.now() };
      arrivals.push(arrival);
      setTimeout(() => {
        arrival.okAt = performance.now();
        res.writeHead(200).end();
      }, 150);
    });
    let server = await startServer(env);
    const call = (method: string, path: string, body?: unknown, headers = asProducer) =>
      fetch(`${server.url}${path}`, { method, headers: { ...headers, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    try {
      const topic = unique('ordkill');
      const sub = await call('POST', '/v1/subscriptions', { name: 'ordered', topic, ordering: 'key', maxAttempts: 20, backoff: { initialMs: 200, maxMs: 1_000 }, target: { type: 'webhook', url: sink.url(), timeoutMs: 1_000 } }, asAdmin);
      expect(sub.status).toBe(201);
      const keys = Array.from({ length: 4 }, () => unique('key'));
      const ids = Array.from({ length: 32 }, (_, i) => ({ id: unique(`k${i}`), key: keys[i % keys.length] as string }));
      await Promise.all(ids.map(async ({ id, key }) => expect((await call('POST', '/v1/messages', { id, topic, key, payload: { id }, confirm: true })).status).toBe(201)));

      // Heads of several keys are being received: kill the process under them.
      await waitFor(() => arrivals.length >= 6, 'deliveries under way');
      server.child.kill('SIGKILL');
      await server.exited;
      await waitFor(async () => (await sink.connections()) === 0, "the killed process's connections to close");

      server = await startServer(env);
      const deliveryIds = new Map<string, number>();
      await waitFor(async () => {
        for (const { id } of ids) {
          if (deliveryIds.has(id)) continue;
          const [d] = ((await (await call('GET', `/v1/messages/${id}/deliveries`)).json()) as { items: Array<{ id: number; status: string }> }).items;
          if (d?.status === 'delivered') deliveryIds.set(id, d.id);
        }
        return deliveryIds.size === ids.length;
      }, 'all delivered after restart', 60_000);
      const problems = keys.flatMap((key) =>
        checkOrder(
          arrivals,
          ids.filter((m) => m.key === key).map((m) => m.id).sort((a, b) => deliveryIds.get(a)! - deliveryIds.get(b)!),
        ),
      );
      console.log(`[fault] ordered kill -9: ${JSON.stringify({ messages: ids.length, arrivals: arrivals.length, violations: problems.length })}`);
      expect(problems).toEqual([]);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
      await sink.close();
    }
  }, 120_000);

  it('keeps every key in order, and delivers everything, after every Herald key is wiped from Redis mid-sequence', async () => {
    const prefix = testPrefix();
    const app = await buildTestApp(db.url, { HERALD_RECONCILE_INTERVAL_MS: '200', HERALD_RECONCILE_GRACE_MS: '300', HERALD_WEBHOOK_TIMEOUT_MS: '2000', HERALD_QUEUE_PREFIX: prefix });
    let healthy = false;
    const arrivals: Arrival[] = [];
    const sink = await startWebhookSink((hit, res) => {
      const at = performance.now();
      arrivals.push({ id: String(hit.headers['webhook-id']), at, ...(healthy && { okAt: at }) });
      res.writeHead(healthy ? 200 : 503).end();
    });
    const redis = new Redis(REDIS_URL);
    try {
      const topic = unique('ordwipe');
      const sub = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'ordered', topic, ordering: 'key', maxAttempts: 30, backoff: { initialMs: 1_500, maxMs: 2_000 }, target: { type: 'webhook', url: sink.url() } } });
      expect(sub.statusCode).toBe(201);
      const keys = Array.from({ length: 5 }, () => unique('key'));
      const ids = Array.from({ length: 40 }, (_, i) => ({ id: unique(`w${i}`), key: keys[i % keys.length] as string }));
      for (const { id, key } of ids) expect((await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id, topic, key, payload: { id }, confirm: true } })).statusCode).toBe(201);
      // Every key's head failed once and waits in Redis for its retry; the rest wait in MySQL.
      await waitFor(() => new Set(arrivals.map((a) => a.id)).size >= keys.length, 'each head tried once');
      expect(await redis.zcard(`${prefix}:deliveries:delayed`)).toBeGreaterThan(0);
      const wiped = await deleteKeysUnder(REDIS_URL, prefix);
      expect(wiped).toBeGreaterThan(0);
      healthy = true;

      const [rows] = await waitFor(async () => {
        const [r] = await app.mysql.query("SELECT message_id, id, status FROM deliveries WHERE message_id IN (?) AND status = 'delivered'", [ids.map((m) => m.id)]);
        return (r as unknown[]).length === ids.length ? [r as Array<{ message_id: string; id: number }>] : undefined;
      }, 'all delivered after the wipe', 60_000);
      const deliveryIds = new Map(rows.map((r) => [r.message_id, Number(r.id)]));
      const problems = keys.flatMap((key) =>
        checkOrder(
          arrivals,
          ids.filter((m) => m.key === key).map((m) => m.id).sort((a, b) => deliveryIds.get(a)! - deliveryIds.get(b)!),
        ),
      );
      console.log(`[fault] ordered redis wipe: ${JSON.stringify({ keysWiped: wiped, messages: ids.length, arrivals: arrivals.length, violations: problems.length })}`);
      expect(problems).toEqual([]);
    } finally {
      redis.disconnect();
      await app.close();
      await sink.close();
    }
  }, 90_000);
});
