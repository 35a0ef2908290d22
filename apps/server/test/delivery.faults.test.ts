import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Redis } from 'ioredis';
import { REDIS_URL, asAdmin, asProducer, buildTestApp, createTestDatabase, testEnv, testPrefix } from './helpers';
import { startServer } from './server-process';
import { deleteKeysUnder, freePort, PrivateRabbitMq, startAmqpConsumer, startWebhookSink, waitFor } from '@herald/test-support';

// Zero-loss under faults. These tests kill processes and stop a RabbitMQ of their own (never the
// machine's), so they run on their own, after the other suites (the server's test-faults target).
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase('fault');
});
afterAll(async () => {
  await db?.drop();
});

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

/** Confirmed, delivered (distinct ids answered 2xx), duplicates (2xx answers beyond the first per id). */
function tally(ids: string[], answeredOk: string[]) {
  const okHits = answeredOk;
  const delivered = new Set(okHits.filter((id) => ids.includes(id)));
  return { confirmed: ids.length, delivered: delivered.size, duplicates: okHits.length - delivered.size };
}

describe('zero loss under faults', () => {
  it('delivers everything after every Herald key is wiped from Redis while deliveries are pending', async () => {
    const prefix = testPrefix();
    const env = { HERALD_RECONCILE_INTERVAL_MS: '200', HERALD_RECONCILE_GRACE_MS: '300', HERALD_WEBHOOK_TIMEOUT_MS: '2000', HERALD_QUEUE_PREFIX: prefix };
    const app = await buildTestApp(db.url, env);
    let healthy = false;
    const answeredOk: string[] = [];
    const sink = await startWebhookSink((hit, res) => {
      if (healthy) answeredOk.push(String(hit.headers['webhook-id']));
      res.writeHead(healthy ? 200 : 503).end();
    });
    const redis = new Redis(REDIS_URL);
    try {
      const topic = unique('wipe');
      const sub = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'wipe', topic, maxAttempts: 20, backoff: { initialMs: 1_500, maxMs: 3_000 }, target: { type: 'webhook', url: sink.url() } } });
      expect(sub.statusCode).toBe(201);
      const ids: string[] = [];
      // Half fail once and wait in Redis for their retry; half wait in Redis for their delayMs.
      for (let i = 0; i < 100; i++) {
        const id = unique('w');
        ids.push(id);
        const res = await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id, topic, payload: { i }, confirm: true, ...(i % 2 ? { delayMs: 1_500 } : {}) } });
        expect(res.statusCode).toBe(201);
      }
      await waitFor(() => sink.hits.length >= 50, 'the first failed attempts');
      const jobsBefore = await redis.zcard(`${prefix}:deliveries:delayed`);
      expect(jobsBefore).toBeGreaterThan(0);

      const wiped = await deleteKeysUnder(REDIS_URL, prefix);
      expect(wiped).toBeGreaterThan(0);
      healthy = true;

      const started = Date.now();
      await waitFor(async () => {
        const [rows] = await app.mysql.query("SELECT COUNT(*) AS n FROM deliveries WHERE status = 'delivered' AND message_id IN (?)", [ids]);
        return Number((rows as Array<{ n: string }>)[0]?.n) === ids.length;
      }, 'all delivered after the wipe', 60_000);
      const counts = tally(ids, answeredOk);
      console.log(`[fault] redis wipe: keys wiped ${wiped}, ${JSON.stringify({ ...counts, recoveryMs: Date.now() - started })}`);
      expect(counts.delivered).toBe(ids.length);
    } finally {
      redis.disconnect();
      await app.close();
      await sink.close();
    }
  }, 90_000);

  it('confirms while Redis is unreachable (committed in MySQL, answered promptly), and delivers once Redis is back', async () => {
    const sink = await startWebhookSink();
    // The API process cannot reach Redis at all; a worker process (with Redis) runs beside it.
    const api = await buildTestApp(db.url, { REDIS_URL: 'redis://127.0.0.1:9', HERALD_ROLE: 'api' });
    try {
      const topic = unique('redis.down');
      const sub = await api.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'down', topic, target: { type: 'webhook', url: sink.url() } } });
      expect(sub.statusCode).toBe(201);
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const id = unique('rd');
        ids.push(id);
        const started = Date.now();
        const res = await api.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id, topic, payload: { i }, confirm: i % 2 === 0, ...(i % 2 ? { checkUrl: 'http://127.0.0.1:9/c' } : {}) } });
        expect(res.statusCode).toBe(201);
        if (i % 2) expect((await api.inject({ method: 'POST', url: `/v1/messages/${id}/confirm`, headers: asProducer })).statusCode).toBe(200);
        // The enqueue after commit gives up after 1 s; prepare + confirm stay well under 5 s.
        expect(Date.now() - started).toBeLessThan(5_000);
      }
      expect((await api.inject({ url: '/readyz' })).statusCode).toBe(503);
      expect(sink.hits).toHaveLength(0);

      const worker = await buildTestApp(db.url, { HERALD_ROLE: 'worker', HERALD_RECONCILE_INTERVAL_MS: '200', HERALD_RECONCILE_GRACE_MS: '300' });
      try {
        const started = Date.now();
        await waitFor(() => new Set(sink.hits.map((h) => h.headers['webhook-id'])).size === ids.length, 'all delivered by the reconciler', 30_000);
        const counts = tally(ids, sink.hits.map((h) => String(h.headers['webhook-id'])));
        console.log(`[fault] redis down at confirm: ${JSON.stringify({ ...counts, recoveryMs: Date.now() - started })}`);
        expect(counts.delivered).toBe(ids.length);
      } finally {
        await worker.close();
      }
    } finally {
      await api.close();
      await sink.close();
    }
  }, 90_000);

  it('delivers everything after kill -9 of the process while a slow endpoint is receiving', async () => {
    const env = testEnv(db.url, { HERALD_RECONCILE_INTERVAL_MS: '200', HERALD_RECONCILE_GRACE_MS: '300' });
    const answeredOk: string[] = [];
    const sink = await startWebhookSink((hit, res) => {
      setTimeout(() => {
        answeredOk.push(String(hit.headers['webhook-id']));
        res.writeHead(200).end();
      }, 1_000);
    });
    let server = await startServer(env);
    try {
      const call = (method: string, path: string, body?: unknown, headers = asProducer) =>
        fetch(`${server.url}${path}`, { method, headers: { ...headers, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      const topic = unique('kill');
      const sub = await call('POST', '/v1/subscriptions', { name: 'slow', topic, maxAttempts: 20, backoff: { initialMs: 200, maxMs: 1_000 }, target: { type: 'webhook', url: sink.url(), timeoutMs: 2_000 } }, asAdmin);
      expect(sub.status).toBe(201);
      const ids = Array.from({ length: 40 }, () => unique('k'));
      for (const id of ids) expect((await call('POST', '/v1/messages', { id, topic, payload: { id }, confirm: true })).status).toBe(201);

      // Requests are arriving and not yet answered: kill the process under them.
      await waitFor(() => sink.hits.length >= 5, 'requests in flight');
      server.child.kill('SIGKILL');
      await server.exited;
      const killedAt = Date.now();
      // Counted once the kernel has closed every connection of the dead process: each request it
      // sent was read before its connection's end (a count taken before the kill misses sends
      // made while the signal was on its way).
      await waitFor(async () => (await sink.connections()) === 0, 'the killed process\'s connections to close');
      const inFlightAtKill = sink.hits.length;

      server = await startServer(env);
      await waitFor(async () => {
        const statuses = await Promise.all(ids.map(async (id) => ((await (await call('GET', `/v1/messages/${id}`)).json()) as { status: string }).status));
        return statuses.every((s) => s === 'delivered');
      }, 'all delivered after restart', 60_000);
      const counts = tally(ids, answeredOk);
      console.log(`[fault] kill -9: ${JSON.stringify({ ...counts, requestsInFlightAtKill: inFlightAtKill, recoveryMs: Date.now() - killedAt })}`);
      expect(counts.delivered).toBe(ids.length);
      // Only what was in flight at the kill may have been sent twice.
      expect(counts.duplicates).toBeLessThanOrEqual(inFlightAtKill);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
      await sink.close();
    }
  }, 120_000);

  it('delivers everything when RabbitMQ is stopped and started (stop_app / start_app) during publishing', async () => {
    // A broker of this test's own: stopping the machine's would break everyone else using it.
    const dir = mkdtempSync(join(tmpdir(), 'herald-fault-rabbitmq-'));
    const ports = new Set<number>();
    const broker = new PrivateRabbitMq(dir, await freePort(ports), await freePort(ports), 'heraldfault');
    const amqp = { url: broker.url };
    onTestFinished(async () => {
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    await broker.start();
    const app = await buildTestApp(db.url, { AMQP_URL: broker.url, HERALD_RECONCILE_INTERVAL_MS: '200', HERALD_RECONCILE_GRACE_MS: '300', HERALD_AMQP_CONFIRM_TIMEOUT_MS: '3000' });
    const exchange = unique('herald.fault.x');
    let consumer = await startAmqpConsumer(exchange, amqp);
    const received: string[] = [];
    try {
      const topic = unique('amqp.fault');
      const sub = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'amqp', topic, maxAttempts: 30, backoff: { initialMs: 200, maxMs: 1_000 }, target: { type: 'rabbitmq', exchange } } });
      expect(sub.statusCode).toBe(201);
      const ids: string[] = [];
      const publishSome = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const id = unique('r');
          ids.push(id);
          const res = await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id, topic, payload: { id }, confirm: true } });
          expect(res.statusCode).toBe(201);
        }
      };
      await publishSome(100);
      const stopped = Date.now();
      await broker.stopApp();
      received.push(...consumer.received.map((m) => String(m.properties.messageId)));
      await publishSome(100); // confirmed in MySQL while the broker is down
      await new Promise((r) => setTimeout(r, 1_000));
      await broker.startApp();
      // The durable queue kept what the broker had accepted: drain it, do not purge it.
      consumer = await startAmqpConsumer(exchange, { ...amqp, purge: false });
      await publishSome(100);

      await waitFor(async () => {
        const [rows] = await app.mysql.query("SELECT COUNT(*) AS n FROM deliveries WHERE status = 'delivered' AND message_id IN (?)", [ids]);
        return Number((rows as Array<{ n: string }>)[0]?.n) === ids.length;
      }, 'all delivered after the broker restart', 60_000);
      await waitFor(() => consumer.received.length + received.length >= ids.length, 'all consumed', 15_000);
      received.push(...consumer.received.map((m) => String(m.properties.messageId)));
      const distinct = new Set(received.filter((id) => ids.includes(id)));
      const counts = { confirmed: ids.length, delivered: distinct.size, duplicates: received.length - distinct.size, recoveryMs: Date.now() - stopped };
      console.log(`[fault] rabbitmq stop_app/start_app: ${JSON.stringify(counts)}`);
      expect(distinct.size).toBe(ids.length);
    } finally {
      await consumer.close();
      await app.close();
    }
  }, 240_000);
});

