import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { API_KEYS, asAdmin, asProducer, buildTestApp, createTestDatabase, testPrefix } from './helpers';
import { startWebhookSink, waitFor, type Hit } from '@herald/test-support';

// Per-key ordered delivery: one at a time per key, in commit order, a dead head blocking its key
// until it is redelivered or skipped. Two apps on one database and one queue are two replicas.
const VIEWER_TOKEN = 'test-viewer-token-00000000000000';
const asViewer = { authorization: `Bearer ${VIEWER_TOKEN}` };

let app: FastifyInstance;
let replica: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sink: Awaited<ReturnType<typeof startWebhookSink>>;

/** Each webhook request as the sink saw it: its message, key, when it arrived and when it was answered. */
interface Receipt {
  id: string;
  key: string | undefined;
  arrivedAt: number;
  answeredAt: number;
  ok: boolean;
}
const receipts: Receipt[] = [];
/** The answer for a message id: 200 unless a test says otherwise. */
let answer: (hit: Hit) => number = () => 200;

beforeAll(async () => {
  db = await createTestDatabase('ord');
  const env = {
    HERALD_RECONCILE_INTERVAL_MS: '200',
    HERALD_RECONCILE_GRACE_MS: '500',
    HERALD_WEBHOOK_TIMEOUT_MS: '2000',
    HERALD_QUEUE_PREFIX: testPrefix(),
    HERALD_API_KEYS: `${API_KEYS},oncall:viewer:${VIEWER_TOKEN}`,
  };
  app = await buildTestApp(db.url, env);
  replica = await buildTestApp(db.url, env);
  // A little random latency per request, so that deliveries sent side by side would overlap and reorder.
  sink = await startWebhookSink(async (hit, res) => {
    await new Promise((r) => setTimeout(r, Math.random() * 12));
    const status = answer(hit);
    receipts.push({ id: String(hit.headers['webhook-id']), key: hit.headers['herald-key'] as string | undefined, arrivedAt: hit.arrivedAt, answeredAt: performance.now(), ok: status < 300 });
    res.writeHead(status).end();
  });
});
afterAll(async () => {
  await app?.close();
  await replica?.close();
  await sink?.close();
  await db?.drop();
});

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

async function subscribe(topic: string, extra: Record<string, unknown> = {}) {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/subscriptions',
    headers: asAdmin,
    payload: { name: 'ordered', topic, ordering: 'key', maxAttempts: 10, backoff: { initialMs: 50, maxMs: 100 }, target: { type: 'webhook', url: sink.url('/ordered') }, ...extra },
  });
  expect(res.statusCode, res.body).toBe(201);
  expect(res.json().ordering).toBe('key');
  return res.json() as { id: string };
}

async function publish(via: FastifyInstance, topic: string, id: string, key?: string) {
  const res = await via.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id, topic, payload: { id }, confirm: true, ...(key && { key }) } });
  expect(res.statusCode, res.body).toBe(201);
}

const message = async (id: string) => (await app.inject({ url: `/v1/messages/${id}`, headers: asProducer })).json();
const delivery = async (id: string) => (await app.inject({ url: `/v1/messages/${id}/deliveries`, headers: asProducer })).json().items[0];
const delivered = (ids: string[]) => async () => (await Promise.all(ids.map(message))).every((m) => m.status === 'delivered');
const firstOk = (id: string) => receipts.find((r) => r.id === id && r.ok);
const received = (id: string) => receipts.some((r) => r.id === id);

/** Asserts that the messages of one key were received one at a time, each first delivered in `order`. */
function expectInOrder(order: string[]): void {
  const mine = receipts.filter((r) => order.includes(r.id));
  for (let i = 1; i < mine.length; i++) {
    // One at a time: no request of the key arrives before the previous one was answered.
    expect(mine[i]!.arrivedAt, `${mine[i]!.id} arrived while ${mine[i - 1]!.id} was in flight`).toBeGreaterThanOrEqual(mine[i - 1]!.answeredAt);
  }
  const firsts = order.map((id) => firstOk(id));
  expect(firsts.every(Boolean), 'every message delivered').toBe(true);
  for (let i = 1; i < firsts.length; i++) expect(firsts[i]!.arrivedAt, `${order[i]} before ${order[i - 1]}`).toBeGreaterThan(firsts[i - 1]!.arrivedAt);
  // And no message is received before every earlier one of its key was received.
  for (let i = 1; i < order.length; i++) {
    const firstSeen = receipts.findIndex((r) => r.id === order[i]);
    expect(receipts.slice(0, firstSeen).some((r) => r.id === order[i - 1] && r.ok), `${order[i]} received before ${order[i - 1]} was delivered`).toBe(true);
  }
}

describe('per-key ordered delivery', () => {
  it('delivers each key one at a time in commit order while two replicas confirm at once', async () => {
    const topic = unique('ord.race');
    await subscribe(topic);
    const keys = ['k1', 'k2', 'k3'].map((k) => unique(k));
    const prepared: Array<{ id: string; key: string }> = [];
    for (let i = 0; i < 60; i++) {
      const key = keys[i % keys.length] as string;
      const id = unique(`r${i}`);
      const res = await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id, topic, key, payload: { i }, checkUrl: 'http://127.0.0.1:9/check' } });
      expect(res.statusCode, res.body).toBe(201);
      prepared.push({ id, key });
    }
    // Every confirm at once, alternating replicas: commits race on every key.
    const timing = new Map<string, { sent: number; answered: number }>();
    await Promise.all(
      prepared.map(async ({ id }, i) => {
        const sent = performance.now();
        const res = await (i % 2 ? replica : app).inject({ method: 'POST', url: `/v1/messages/${id}/confirm`, headers: asProducer });
        expect(res.statusCode, res.body).toBe(200);
        timing.set(id, { sent, answered: performance.now() });
      }),
    );
    await waitFor(delivered(prepared.map((p) => p.id)), 'every message delivered', 30_000);
    const deliveryIds = new Map(await Promise.all(prepared.map(async (p) => [p.id, (await delivery(p.id)).id as number] as const)));
    for (const key of keys) {
      const ofKey = prepared.filter((p) => p.key === key).map((p) => p.id);
      // Commit order is the order deliveries joined the key: by delivery id.
      const order = [...ofKey].sort((a, b) => deliveryIds.get(a)! - deliveryIds.get(b)!);
      expectInOrder(order);
      // A confirm answered before another was sent committed first, so it comes first.
      for (const a of ofKey) for (const b of ofKey) if (timing.get(a)!.answered < timing.get(b)!.sent) expect(deliveryIds.get(a)!).toBeLessThan(deliveryIds.get(b)!);
    }
  });

  it('holds a failing head’s key, and only its key, until the head is delivered', async () => {
    const topic = unique('ord.hold');
    await subscribe(topic);
    const [a1, a2, a3, b1, b2, n1] = ['a1', 'a2', 'a3', 'b1', 'b2', 'n1'].map(unique) as [string, string, string, string, string, string];
    let a1Fails = true;
    answer = (hit) => (hit.headers['webhook-id'] === a1 && a1Fails ? 503 : 200);
    const keyA = unique('A');
    const keyB = unique('B');
    for (const [id, key] of [[a1, keyA], [a2, keyA], [a3, keyA], [b1, keyB], [b2, keyB], [n1, undefined]] as const) await publish(app, topic, id, key);
    await waitFor(delivered([b1, b2, n1]), 'the other key and the keyless message delivered');
    await waitFor(() => receipts.filter((r) => r.id === a1).length >= 3, 'a1 retried');
    // While a1 fails, the rest of its key waits, visibly: pending with no next attempt.
    expect(received(a2) || received(a3)).toBe(false);
    expect(await delivery(a3)).toMatchObject({ status: 'pending', nextAttemptAt: null });
    expect(await delivery(a1)).toMatchObject({ status: 'pending', nextAttemptAt: expect.any(String) });
    a1Fails = false;
    await waitFor(delivered([a1, a2, a3]), 'key A delivered once its head succeeds');
    expectInOrder([a1, a2, a3]);
    expectInOrder([b1, b2]);
    // Key B was not held up by key A's failing head.
    expect(firstOk(b2)!.arrivedAt).toBeLessThan(firstOk(a1)!.arrivedAt);
    answer = () => 200;
  });

  it('blocks a key on a dead delivery until it is redelivered and delivered, listing the blocked key meanwhile', async () => {
    const topic = unique('ord.dead');
    const sub = await subscribe(topic, { maxAttempts: 1 });
    const key = unique('C');
    const [c1, c2, c3] = ['c1', 'c2', 'c3'].map(unique) as [string, string, string];
    answer = (hit) => (hit.headers['webhook-id'] === c1 ? 503 : 200);
    for (const id of [c1, c2, c3]) await publish(app, topic, id, key);
    await waitFor(async () => (await message(c1)).status === 'failed', 'c1 dead');
    await new Promise((r) => setTimeout(r, 800));
    expect(received(c2) || received(c3)).toBe(false);

    for (const as of [asAdmin, asViewer]) {
      const blocked = await app.inject({ url: `/v1/subscriptions/${sub.id}/blocked-keys`, headers: as });
      expect(blocked.statusCode, blocked.body).toBe(200);
      expect(blocked.json()).toMatchObject({ items: [{ tenant: 'default', key, messageId: c1, waiting: 2, lastStatusCode: 503 }], nextCursor: null });
    }
    expect((await app.inject({ url: `/v1/subscriptions/${sub.id}/blocked-keys`, headers: asProducer })).statusCode).toBe(403);

    answer = () => 200;
    const redeliver = await app.inject({ method: 'POST', url: `/v1/messages/${c1}/redeliver`, headers: asAdmin });
    expect(redeliver.statusCode, redeliver.body).toBe(202);
    await waitFor(delivered([c1, c2, c3]), 'the key moves on once its head is delivered');
    expectInOrder([c1, c2, c3]);
    expect((await app.inject({ url: `/v1/subscriptions/${sub.id}/blocked-keys`, headers: asAdmin })).json().items).toEqual([]);
  });

  it('skips a dead head on an admin’s word, audited; viewers and producers may not, and an unblocked key is 404', async () => {
    const topic = unique('ord.skip');
    const sub = await subscribe(topic, { maxAttempts: 1 });
    const key = unique('D');
    const [d1, d2, d3] = ['d1', 'd2', 'd3'].map(unique) as [string, string, string];
    answer = (hit) => (hit.headers['webhook-id'] === d1 ? 503 : 200);
    for (const id of [d1, d2, d3]) await publish(replica, topic, id, key);
    await waitFor(async () => (await message(d1)).status === 'failed', 'd1 dead');
    const skip = (headers: Record<string, string>, body: Record<string, unknown>) => app.inject({ method: 'POST', url: `/v1/subscriptions/${sub.id}/blocked-keys/skip`, headers, payload: body });

    expect((await skip(asViewer, { tenant: 'default', key, reason: 'try' })).statusCode).toBe(403);
    expect((await skip(asProducer, { tenant: 'default', key, reason: 'try' })).statusCode).toBe(403);
    expect((await skip(asAdmin, { tenant: 'default', key })).statusCode).toBe(400);
    const other = await skip(asAdmin, { tenant: 'default', key: unique('nope'), reason: 'wrong key' });
    expect(other.statusCode).toBe(404);
    expect(other.json().message).toContain('is not blocked');
    expect(received(d2)).toBe(false);

    const skipped = await skip(asAdmin, { tenant: 'default', key, reason: 'coupon service rejects this order for good' });
    expect(skipped.statusCode, skipped.body).toBe(200);
    const d1Delivery = await delivery(d1);
    expect(skipped.json()).toEqual({ deliveryId: d1Delivery.id, messageId: d1, nextDeliveryId: (await delivery(d2)).id });
    await waitFor(delivered([d2, d3]), 'the rest of the key delivered');
    expectInOrder([d2, d3]);
    // The skipped delivery stays dead, marked skipped, and was sent once only.
    expect(d1Delivery).toMatchObject({ status: 'dead', skippedAt: expect.any(String) });
    expect((await message(d1)).status).toBe('failed');
    expect(receipts.filter((r) => r.id === d1)).toHaveLength(1);
    // Skipping it again finds nothing blocked.
    expect((await skip(asAdmin, { tenant: 'default', key, reason: 'again' })).statusCode).toBe(404);

    const audit = (await app.inject({ url: `/v1/audit?targetType=subscription&targetId=${sub.id}`, headers: asAdmin })).json().items;
    expect(audit.map((e: { action: string; outcome: string }) => `${e.action}: ${e.outcome}`)).toEqual([
      'subscription.skip_key: not blocked',
      `subscription.skip_key: skipped delivery ${d1Delivery.id}, delivery ${(await delivery(d2)).id} due`,
      'subscription.skip_key: not blocked',
      'subscription.create: created',
    ]);
    expect(audit[1]).toMatchObject({ actor: 'ops', reason: `default/${key}: coupon service rejects this order for good` });
    answer = () => 200;
  });

  it('leaves subscriptions without ordering parallel, and a message without a key unordered', async () => {
    const topic = unique('ord.none');
    const res = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'parallel', topic, target: { type: 'webhook', url: sink.url('/parallel') } } });
    expect(res.json().ordering).toBe('none');
    const key = unique('E');
    const ids = Array.from({ length: 10 }, (_, i) => unique(`e${i}`));
    await Promise.all(ids.map((id) => publish(app, topic, id, key)));
    await waitFor(delivered(ids), 'all delivered');
    // Sent side by side: some request arrived while another of the same key was in flight.
    const mine = receipts.filter((r) => ids.includes(r.id));
    const overlapped = mine.some((r) => mine.some((o) => o !== r && o.arrivedAt < r.arrivedAt && o.answeredAt > r.arrivedAt));
    expect(overlapped).toBe(true);
  });
});
