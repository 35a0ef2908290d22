import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { REDIS_URL, TEST_CHECK_SECRET, asAdmin, asProducer, buildTestApp, createTestDatabase, testEnv, testPrefix } from './helpers';
import { startServer } from './server-process';
import { startWebhookSink, waitFor, type Hit } from '@herald/test-support';

// Fast schedules so rounds take milliseconds: first check 200 ms after prepare, then 100 ms, 200 ms …
const FAST = { HERALD_CHECK_SWEEP_INTERVAL_MS: '100', HERALD_CHECK_TIMEOUT_MS: '2000', HERALD_RECONCILE_INTERVAL_MS: '200', HERALD_RECONCILE_GRACE_MS: '300' };

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let deliveries: Awaited<ReturnType<typeof startWebhookSink>>;
/** What the producer answers, per message id: one entry per check, the last one repeated. */
const script = new Map<string, Array<[number, string]>>();
/** Runs when a check arrives, before the answer (to race it with the API). */
const onCheck = new Map<string, () => Promise<void>>();
let producer: Awaited<ReturnType<typeof startWebhookSink>>;

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
const answer = (status: string): [number, string] => [200, JSON.stringify({ status })];

beforeAll(async () => {
  db = await createTestDatabase('chk');
  producer = await startWebhookSink(async (hit, res) => {
    const { id, check } = JSON.parse(hit.body) as { id: string; check: number };
    await onCheck.get(id)?.();
    const answers = script.get(id) ?? [answer('unknown')];
    const [code, body] = answers[Math.min(check, answers.length) - 1]!;
    res.writeHead(code, { 'content-type': 'application/json' }).end(body);
  });
  deliveries = await startWebhookSink();
  app = await buildTestApp(db.url, FAST);
});
afterAll(async () => {
  await app?.close();
  await producer?.close();
  await deliveries?.close();
  await db?.drop();
});

const checksOf = (id: string): Hit[] => producer.hits.filter((h) => h.headers['herald-message-id'] === id);
const getMessage = async (target: FastifyInstance, id: string) => (await target.inject({ url: `/v1/messages/${id}`, headers: asProducer })).json();
const statusIs = (id: string, status: string) => async () => (await getMessage(app, id)).status === status;

async function subscribe(topic: string) {
  const res = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'chk', topic, backoff: { initialMs: 50, maxMs: 200 }, target: { type: 'webhook', url: deliveries.url(`/${topic}`) } } });
  expect(res.statusCode).toBe(201);
}

async function prepare(target: FastifyInstance, topic: string, answers: Array<[number, string]>, extra: Record<string, unknown> = {}) {
  const id = unique('chk');
  script.set(id, answers);
  const res = await target.inject({
    method: 'POST',
    url: '/v1/messages',
    headers: asProducer,
    payload: { id, topic, key: `key-${id}`, payload: { id }, checkUrl: producer.url('/check'), checkAfterMs: 200, checkIntervalMs: 100, ...extra },
  });
  expect(res.statusCode, res.body).toBe(201);
  return id;
}

/**
 * Prepares a control message (answers unknown, then commit) first checked `checkAfterMs` from now
 * and waits until its second check is answered: every check due before then has been made, so a
 * check or delivery that has not happened by then was not going to.
 */
async function afterLaterChecks(target: FastifyInstance = app, checkAfterMs = 200) {
  const control = await prepare(target, unique('chk.control'), [answer('unknown'), answer('commit')], { checkAfterMs });
  await waitFor(async () => (await getMessage(target, control)).status === 'confirmed', 'the control message confirmed after two checks');
}

describe('check-back', () => {
  it('commit → confirmed and delivered without any confirm call; the call is signed and says what it asks', async () => {
    const topic = unique('chk.commit');
    await subscribe(topic);
    const id = await prepare(app, topic, [answer('commit')]);
    await waitFor(statusIs(id, 'delivered'), 'delivered');
    const [call] = checksOf(id);
    expect(checksOf(id)).toHaveLength(1);
    expect(new Webhook(TEST_CHECK_SECRET).verify(call!.body, call!.headers as Record<string, string>)).toEqual({ id, topic, key: `key-${id}`, check: 1 });
    expect(call!.headers).toMatchObject({ 'herald-message-id': id, 'webhook-id': `${id}:check:1`, 'content-type': 'application/json' });
    const message = await getMessage(app, id);
    expect(message).toMatchObject({ status: 'delivered', checks: 1, nextCheckAt: null });
    expect(message.checkAttempts).toMatchObject([{ check: 1, answer: 'commit', statusCode: 200, error: null }]);
    expect(deliveries.hitsFor(id)).toHaveLength(1);
  });

  it('rollback → cancelled and never delivered', async () => {
    const topic = unique('chk.rollback');
    await subscribe(topic);
    const id = await prepare(app, topic, [answer('rollback')]);
    await waitFor(statusIs(id, 'cancelled'), 'cancelled');
    await afterLaterChecks();
    expect(deliveries.hitsFor(id)).toHaveLength(0);
    expect(checksOf(id)).toHaveLength(1);
    expect((await getMessage(app, id)).deliveries).toEqual([]);
  });

  it('unknown, unknown, commit → exactly three checks, then delivered', async () => {
    const topic = unique('chk.unknown');
    await subscribe(topic);
    const id = await prepare(app, topic, [answer('unknown'), answer('unknown'), answer('commit')]);
    await waitFor(statusIs(id, 'delivered'), 'delivered');
    // A fourth check would come 400 ms after the third.
    await afterLaterChecks(app, 400);
    expect(checksOf(id).map((h) => JSON.parse(h.body).check)).toEqual([1, 2, 3]);
    expect((await getMessage(app, id)).checkAttempts.map((a: { answer: string }) => a.answer)).toEqual(['unknown', 'unknown', 'commit']);
  });

  it('asks again with growing waits', async () => {
    const id = await prepare(app, unique('chk.waits'), [answer('unknown'), answer('unknown'), answer('unknown'), answer('commit')], { checkIntervalMs: 150 });
    await waitFor(statusIs(id, 'confirmed'), 'confirmed');
    const at = checksOf(id).map((h) => h.at);
    // 150 ms, then 300 ms, then 600 ms between checks (plus sweep latency).
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(140);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(290);
    expect(at[3]! - at[2]!).toBeGreaterThanOrEqual(590);
  });

  it('cancels after exactly maxChecks unknown answers (onChecksExhausted: rollback, the default)', async () => {
    const topic = unique('chk.exhausted');
    await subscribe(topic);
    const id = await prepare(app, topic, [answer('unknown')], { maxChecks: 3 });
    await waitFor(statusIs(id, 'cancelled'), 'cancelled');
    // A fourth check would come 400 ms after the third.
    await afterLaterChecks(app, 400);
    expect(checksOf(id)).toHaveLength(3);
    expect(deliveries.hitsFor(id)).toHaveLength(0);
  });

  it('holds after maxChecks with onChecksExhausted: hold; a person confirms; then it is delivered', async () => {
    const topic = unique('chk.hold');
    await subscribe(topic);
    const id = await prepare(app, topic, [answer('unknown')], { maxChecks: 2, onChecksExhausted: 'hold' });
    await waitFor(statusIs(id, 'unresolved'), 'unresolved');
    await afterLaterChecks();
    expect(checksOf(id)).toHaveLength(2);
    const held = await app.inject({ url: '/v1/messages?status=unresolved', headers: asAdmin });
    expect(held.json().items.map((m: { id: string }) => m.id)).toContain(id);
    const metrics = (await app.inject({ url: '/metrics' })).body;
    expect(Number(/^herald_messages_unresolved (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/confirm`, headers: asAdmin })).statusCode).toBe(200);
    await waitFor(statusIs(id, 'delivered'), 'delivered');
    expect(deliveries.hitsFor(id)).toHaveLength(1);
  });

  it('never takes a malformed 200, a 500, or a wrongly spelt status as commit', async () => {
    const topic = unique('chk.malformed');
    await subscribe(topic);
    const id = await prepare(app, topic, [[200, 'commit please'], [500, JSON.stringify({ status: 'commit' })], [200, JSON.stringify({ status: 'COMMIT' })]], { maxChecks: 3 });
    await waitFor(statusIs(id, 'cancelled'), 'cancelled');
    const attempts = (await getMessage(app, id)).checkAttempts;
    expect(attempts.map((a: { answer: string }) => a.answer)).toEqual(['unknown', 'unknown', 'unknown']);
    expect(attempts.map((a: { error: string }) => a.error)).toEqual([
      'producer answered 200 with a body that is not JSON',
      'producer answered HTTP 500, not 200',
      'producer answered 200 without "status": "commit" | "rollback" | "unknown" (got "COMMIT")',
    ]);
    await afterLaterChecks();
    expect(deliveries.hitsFor(id)).toHaveLength(0);
  });

  it('makes no check call once the producer confirmed in time', async () => {
    const topic = unique('chk.intime');
    await subscribe(topic);
    const id = await prepare(app, topic, [answer('rollback')], { checkAfterMs: 500 });
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/confirm`, headers: asProducer })).statusCode).toBe(200);
    await waitFor(statusIs(id, 'delivered'), 'delivered');
    // Its check was due 500 ms after the prepare; the control's come 500 ms after this.
    await afterLaterChecks(app, 500);
    expect(checksOf(id)).toHaveLength(0);
    expect((await getMessage(app, id)).status).toBe('delivered');
  });

  it('a commit answer racing a late cancel cannot produce both outcomes', async () => {
    const topic = unique('chk.race');
    await subscribe(topic);
    const id = await prepare(app, topic, [answer('commit')]);
    // The producer cancels through the API while Herald waits for its answer, then says commit.
    onCheck.set(id, async () => {
      expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/cancel`, headers: asProducer })).statusCode).toBe(200);
    });
    await waitFor(() => checksOf(id).length === 1, 'the check');
    await waitFor(async () => (await getMessage(app, id)).checkAttempts.length === 1, 'the answer recorded');
    await afterLaterChecks();
    const message = await getMessage(app, id);
    expect(message.status).toBe('cancelled');
    expect(message.checkAttempts).toMatchObject([{ answer: 'commit' }]);
    expect(message.deliveries).toEqual([]);
    expect(deliveries.hitsFor(id)).toHaveLength(0);
  });

  it('checks each message once per round with three replicas sweeping together', async () => {
    const prefix = testPrefix();
    const replicas = await Promise.all([1, 2, 3].map(() => buildTestApp(db.url, { ...FAST, HERALD_QUEUE_PREFIX: prefix })));
    try {
      const topic = unique('chk.replicas');
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) ids.push(await prepare(replicas[i % 3]!, topic, [answer('unknown'), answer('unknown'), answer('commit')]));
      for (const id of ids) await waitFor(statusIs(id, 'confirmed'), `${id} confirmed`, 30_000);
      await afterLaterChecks(replicas[0]);
      const calls = ids.flatMap((id) => checksOf(id).map((h) => `${id}#${JSON.parse(h.body).check}`));
      expect(calls).toHaveLength(90);
      expect(new Set(calls).size).toBe(90);
      console.log(`[checks] three replicas: ${ids.length} messages, ${calls.length} check calls, ${calls.length - new Set(calls).size} repeated`);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  }, 60_000);
});

describe('check-back when Redis forgets', () => {
  it('re-derives the schedule from MySQL after every Herald key (the sweep scheduler too) is wiped', async () => {
    const prefix = testPrefix();
    const replica = await buildTestApp(db.url, { ...FAST, HERALD_QUEUE_PREFIX: prefix });
    const redis = new Redis(REDIS_URL);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) ids.push(await prepare(replica, unique('chk.wipe'), [answer('commit')], { checkAfterMs: 1_500 }));
      await waitFor(async () => (await redis.keys(`${prefix}:checks:*`)).length > 0, 'the sweep scheduler in Redis');
      const keys = await redis.keys(`${prefix}:*`);
      expect(await redis.del(...keys)).toBeGreaterThan(0);
      for (const id of ids) await waitFor(statusIs(id, 'confirmed'), `${id} confirmed after the wipe`, 20_000);
      for (const id of ids) expect(checksOf(id)).toHaveLength(1);
    } finally {
      redis.disconnect();
      await replica.close();
    }
  }, 60_000);
});

describe('check-back across a crash', () => {
  it('still checks a message prepared just before kill -9, after the restart', async () => {
    const env = testEnv(db.url, FAST);
    let server = await startServer(env);
    const id = unique('chk-k9');
    script.set(id, [answer('commit')]);
    try {
      const res = await fetch(`${server.url}/v1/messages`, {
        method: 'POST',
        headers: { ...asProducer, 'content-type': 'application/json' },
        body: JSON.stringify({ id, topic: 'chk.crash', payload: {}, checkUrl: producer.url('/check'), checkAfterMs: 1_000 }),
      });
      expect(res.status).toBe(201);
      server.child.kill('SIGKILL');
      await server.exited;
      expect(checksOf(id)).toHaveLength(0);
      server = await startServer(env);
      await waitFor(async () => ((await (await fetch(`${server.url}/v1/messages/${id}`, { headers: asProducer })).json()) as { status: string }).status === 'confirmed', 'confirmed by check-back after restart', 20_000);
      expect(checksOf(id)).toHaveLength(1);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  }, 60_000);
});
