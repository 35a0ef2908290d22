import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import type { FastifyInstance } from 'fastify';
import { Queue } from 'bullmq';
import { DELIVERY_QUEUE } from '@herald/queues';
import { asAdmin, asProducer, buildTestApp, createTestDatabase, metricValue, prepareBody, REDIS_URL, testPrefix } from './helpers';
import { startAmqpConsumer, startWebhookSink, waitFor } from '@herald/test-support';

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sink: Awaited<ReturnType<typeof startWebhookSink>>;
const queuePrefix = testPrefix();

beforeAll(async () => {
  db = await createTestDatabase('dlv');
  app = await buildTestApp(db.url, { HERALD_RECONCILE_INTERVAL_MS: '200', HERALD_RECONCILE_GRACE_MS: '500', HERALD_WEBHOOK_TIMEOUT_MS: '2000', HERALD_QUEUE_PREFIX: queuePrefix });
  sink = await startWebhookSink();
});
afterAll(async () => {
  await app?.close();
  await sink?.close();
  await db?.drop();
});

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

async function subscribe(body: Record<string, unknown>) {
  const res = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'test', maxAttempts: 5, backoff: { initialMs: 50, maxMs: 200 }, ...body } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as { id: string; secret?: string; topic: string };
}

async function publish(topic: string, payload: unknown = { n: 1 }, extra: Record<string, unknown> = {}) {
  const id = unique('m');
  const res = await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id, topic, payload, confirm: true, ...extra } });
  expect(res.statusCode, res.body).toBe(201);
  return id;
}

const getMessage = async (id: string) => (await app.inject({ url: `/v1/messages/${id}`, headers: asProducer })).json();
const deliveriesOf = async (id: string) => (await app.inject({ url: `/v1/messages/${id}/deliveries`, headers: asProducer })).json().items;
const statusIs = (id: string, status: string) => async () => (await getMessage(id)).status === status;

describe('webhook delivery', () => {
  it('delivers a signed webhook that an independent Standard Webhooks verifier accepts', async () => {
    const topic = unique('signed.topic');
    const sub = await subscribe({ topic, target: { type: 'webhook', url: sink.url('/signed'), headers: { 'x-consumer': 'coupons' } } });
    expect(sub.secret).toMatch(/^whsec_[A-Za-z0-9+/=]{40,}$/);
    const id = await publish(topic, { orderId: 1001, note: 'zß水' }, { key: 'order-1001', headers: { 'x-tenant': 'acme' } });
    await waitFor(statusIs(id, 'delivered'), 'delivered');

    const [hit] = sink.hitsFor(id);
    expect(hit).toBeDefined();
    const verified = new Webhook(sub.secret as string).verify(hit!.body, hit!.headers as Record<string, string>);
    expect(verified).toEqual({ orderId: 1001, note: 'zß水' });
    expect(() => new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(hit!.body, hit!.headers as Record<string, string>)).toThrow();
    expect(hit!.headers).toMatchObject({
      'webhook-id': id,
      'herald-topic': topic,
      'herald-key': 'order-1001',
      'herald-attempt': '1',
      'content-type': 'application/json',
      'x-tenant': 'acme',
      'x-consumer': 'coupons',
    });
    const message = await getMessage(id);
    expect(message.deliveries).toEqual([{ subscriptionId: sub.id, status: 'delivered', attempts: 1, lastError: null }]);
    const [delivery] = await deliveriesOf(id);
    expect(delivery.attemptsLog).toHaveLength(1);
    expect(delivery.attemptsLog[0]).toMatchObject({ ok: true, statusCode: 200, responseExcerpt: 'ok', error: null });
  });

  it('fans out to every enabled subscription whose pattern matches, and only those', async () => {
    const root = unique('fan');
    const subs = await Promise.all(
      [`${root}.order.paid`, `${root}.order.*`, `${root}.order.#`, `${root}.#`, `${root}.shipment.*`, `${root}.*`].map((topic) =>
        subscribe({ topic, target: { type: 'webhook', url: sink.url(`/fan/${topic}`) } }),
      ),
    );
    await subscribe({ topic: `${root}.#`, enabled: false, target: { type: 'webhook', url: sink.url('/disabled') } });
    const paid = await publish(`${root}.order.paid`);
    const deep = await publish(`${root}.order.paid.eu`);
    await waitFor(statusIs(paid, 'delivered'), 'paid delivered');
    await waitFor(statusIs(deep, 'delivered'), 'deep delivered');
    const subsOf = async (id: string) => (await getMessage(id)).deliveries.map((d: { subscriptionId: string }) => d.subscriptionId).sort();
    expect(await subsOf(paid)).toEqual([subs[0]!.id, subs[1]!.id, subs[2]!.id, subs[3]!.id].sort());
    expect(await subsOf(deep)).toEqual([subs[2]!.id, subs[3]!.id].sort());
    expect(sink.hitsFor(paid).map((h) => h.path).sort(), JSON.stringify(sink.hitsFor(paid).map((h) => [h.path, h.headers['herald-attempt']]))).toHaveLength(4);
    expect(sink.hits.filter((h) => h.path === '/disabled')).toHaveLength(0);
  });

  it('retries failures with backoff, then succeeds, with the right attempt count', async () => {
    const topic = unique('retry.topic');
    let calls = 0;
    const flaky = await startWebhookSink((_hit, res) => void res.writeHead(++calls <= 2 ? 500 : 200).end(calls <= 2 ? 'boom' : 'fine'));
    try {
      await subscribe({ topic, target: { type: 'webhook', url: flaky.url() } });
      const id = await publish(topic);
      await waitFor(statusIs(id, 'delivered'), 'delivered after retries');
      expect(flaky.hits.map((h) => h.headers['herald-attempt'])).toEqual(['1', '2', '3']);
      expect(new Set(flaky.hits.map((h) => h.headers['webhook-id']))).toEqual(new Set([id]));
      const [delivery] = await deliveriesOf(id);
      expect(delivery).toMatchObject({ status: 'delivered', attempts: 3 });
      expect(delivery.attemptsLog.map((a: { statusCode: number }) => a.statusCode)).toEqual([200, 500, 500]);
      expect(delivery.attemptsLog[1]).toMatchObject({ ok: false, error: 'endpoint answered HTTP 500', responseExcerpt: 'boom' });
    } finally {
      await flaky.close();
    }
  });

  it('honours Retry-After', async () => {
    const topic = unique('retry.after');
    let calls = 0;
    const busy = await startWebhookSink((_hit, res) => {
      if (++calls === 1) res.writeHead(503, { 'retry-after': '2' }).end();
      else res.writeHead(204).end();
    });
    try {
      // Backoff alone would retry within 200 ms.
      await subscribe({ topic, target: { type: 'webhook', url: busy.url() } });
      const id = await publish(topic);
      await waitFor(statusIs(id, 'delivered'), 'delivered after Retry-After', 10_000);
      const [first, second] = busy.hits;
      expect(second!.at - first!.at).toBeGreaterThanOrEqual(1_900);
    } finally {
      await busy.close();
    }
  });

  it('does not follow redirects', async () => {
    const topic = unique('redirect');
    const redirecting = await startWebhookSink((_hit, res) => void res.writeHead(302, { location: sink.url('/elsewhere') }).end());
    try {
      await subscribe({ topic, maxAttempts: 1, target: { type: 'webhook', url: redirecting.url() } });
      const id = await publish(topic);
      await waitFor(statusIs(id, 'failed'), 'failed');
      expect((await getMessage(id)).deliveries[0].lastError).toMatch(/HTTP 302; redirects are not followed/);
      expect(sink.hits.filter((h) => h.path === '/elsewhere')).toHaveLength(0);
    } finally {
      await redirecting.close();
    }
  });

  it('a dead delivery is visible, and replay delivers it', async () => {
    const topic = unique('dead.replay');
    let healthy = false;
    const endpoint = await startWebhookSink((_hit, res) => void res.writeHead(healthy ? 200 : 500).end());
    try {
      await subscribe({ topic, maxAttempts: 2, target: { type: 'webhook', url: endpoint.url() } });
      const id = await publish(topic);
      await waitFor(statusIs(id, 'failed'), 'failed');
      const dead = (await getMessage(id)).deliveries[0];
      expect(dead).toMatchObject({ status: 'dead', attempts: 2 });
      expect(dead.lastError).toBe('gave up after 2 attempts: endpoint answered HTTP 500');
      expect(endpoint.hits).toHaveLength(2);

      // A producer token may not replay; an admin may.
      expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/redeliver`, headers: asProducer })).statusCode).toBe(403);
      healthy = true;
      const replay = await app.inject({ method: 'POST', url: `/v1/messages/${id}/redeliver`, headers: asAdmin });
      expect(replay.statusCode).toBe(202);
      expect(replay.json()).toEqual({ requeued: 1 });
      await waitFor(statusIs(id, 'delivered'), 'delivered after replay');
      expect(endpoint.hits).toHaveLength(3);
      const [delivery] = await deliveriesOf(id);
      expect(delivery.attemptsLog.map((a: { generation: number; attempt: number }) => `${a.generation}/${a.attempt}`)).toEqual(['1/1', '0/2', '0/1']);
      // Nothing dead is left to replay.
      expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/redeliver`, headers: asAdmin })).json()).toEqual({ requeued: 0 });
      // { all: true } replays delivered ones too.
      expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/redeliver`, headers: asAdmin, payload: { all: true } })).json()).toEqual({ requeued: 1 });
      await waitFor(() => endpoint.hits.length === 4, 'fourth hit');
      await waitFor(statusIs(id, 'delivered'), 'delivered again');
    } finally {
      await endpoint.close();
    }
  });

  it('replays a subscription’s dead deliveries in bulk, by time range', async () => {
    const topic = unique('bulk.replay');
    let healthy = false;
    const endpoint = await startWebhookSink((_hit, res) => void res.writeHead(healthy ? 200 : 500).end());
    try {
      const sub = await subscribe({ topic, maxAttempts: 1, target: { type: 'webhook', url: endpoint.url() } });
      const ids = [await publish(topic), await publish(topic), await publish(topic)];
      for (const id of ids) await waitFor(statusIs(id, 'failed'), `${id} failed`);
      healthy = true;
      const future = await app.inject({ method: 'POST', url: `/v1/subscriptions/${sub.id}/redeliver`, headers: asAdmin, payload: { since: new Date(Date.now() + 60_000).toISOString() } });
      expect(future.json()).toEqual({ requeued: 0 });
      const res = await app.inject({ method: 'POST', url: `/v1/subscriptions/${sub.id}/redeliver`, headers: asAdmin, payload: { since: new Date(Date.now() - 60_000).toISOString() } });
      expect(res.statusCode).toBe(202);
      expect(res.json()).toEqual({ requeued: 3 });
      for (const id of ids) await waitFor(statusIs(id, 'delivered'), `${id} delivered`);
    } finally {
      await endpoint.close();
    }
  });

  it('disables the subscription and says so when the endpoint answers 410 Gone', async () => {
    const topic = unique('gone');
    const gone = await startWebhookSink((_hit, res) => void res.writeHead(410).end());
    try {
      const sub = await subscribe({ topic, target: { type: 'webhook', url: gone.url() } });
      const id = await publish(topic);
      await waitFor(statusIs(id, 'failed'), 'failed');
      expect(gone.hits).toHaveLength(1);
      const after = (await app.inject({ url: `/v1/subscriptions/${sub.id}`, headers: asAdmin })).json();
      expect(after.enabled).toBe(false);
      expect(after.disabledReason).toMatch(/^endpoint answered 410 Gone at /);
      expect((await getMessage(id)).deliveries[0].lastError).toMatch(/410 Gone; the subscription was disabled/);
      // Further messages are not fanned out to it.
      const next = await publish(topic);
      expect((await getMessage(next)).deliveries).toEqual([]);
    } finally {
      await gone.close();
    }
  });

  it('delays the first attempt by delayMs', async () => {
    const topic = unique('delayed');
    await subscribe({ topic, target: { type: 'webhook', url: sink.url('/delayed') } });
    const started = Date.now();
    const id = await publish(topic, { n: 1 }, { delayMs: 1_000 });
    await waitFor(statusIs(id, 'delivered'), 'delivered');
    const [hit] = sink.hitsFor(id);
    expect(hit!.at - started).toBeGreaterThanOrEqual(950);
  });

  it('never delivers a cancelled message', async () => {
    const topic = unique('cancelled');
    await subscribe({ topic, target: { type: 'webhook', url: sink.url('/cancelled') } });
    const id = unique('c');
    await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { ...prepareBody(id), topic } });
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/cancel`, headers: asProducer })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/confirm`, headers: asProducer })).statusCode).toBe(409);
    // A message confirmed after it went the whole way: the worker had every chance to get it
    // wrong. A delivery is only ever sent from a deliveries row, and none exists (below).
    const control = await publish(topic);
    await waitFor(statusIs(control, 'delivered'), 'control delivered');
    expect(sink.hitsFor(id)).toHaveLength(0);
    expect(await getMessage(id)).toMatchObject({ status: 'cancelled', deliveries: [] });
    const [rows] = await app.mysql.query('SELECT COUNT(*) AS n FROM deliveries WHERE message_id = ?', [id]);
    expect(Number((rows as Array<{ n: string }>)[0]?.n)).toBe(0);
  });

  it('delivers a prepared message on confirm (not before)', async () => {
    const topic = unique('two.phase');
    await subscribe({ topic, target: { type: 'webhook', url: sink.url('/two-phase') } });
    const id = unique('tp');
    await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { ...prepareBody(id), topic } });
    // A message confirmed after the prepare is delivered: the prepared one would have been by now.
    const control = await publish(topic);
    await waitFor(statusIs(control, 'delivered'), 'control delivered');
    expect(sink.hitsFor(id)).toHaveLength(0);
    const confirmed = await app.inject({ method: 'POST', url: `/v1/messages/${id}/confirm`, headers: asProducer });
    expect(confirmed.json().deliveries).toHaveLength(1);
    await waitFor(statusIs(id, 'delivered'), 'delivered');
    expect(sink.hitsFor(id)).toHaveLength(1);
  });

  it('signs with both secrets during a rotation’s grace period', async () => {
    const topic = unique('rotate');
    const sub = await subscribe({ topic, target: { type: 'webhook', url: sink.url('/rotate') } });
    const rotated = await app.inject({ method: 'POST', url: `/v1/subscriptions/${sub.id}/rotate-secret`, headers: asAdmin, payload: { graceMs: 60_000 } });
    expect(rotated.statusCode).toBe(200);
    const { secret } = rotated.json();
    expect(secret).not.toBe(sub.secret);
    const id = await publish(topic);
    await waitFor(statusIs(id, 'delivered'), 'delivered');
    const [hit] = sink.hitsFor(id);
    expect(String(hit!.headers['webhook-signature']).split(' ')).toHaveLength(2);
    for (const s of [secret, sub.secret as string]) expect(new Webhook(s).verify(hit!.body, hit!.headers as Record<string, string>)).toEqual({ n: 1 });

    const noGrace = await app.inject({ method: 'POST', url: `/v1/subscriptions/${sub.id}/rotate-secret`, headers: asAdmin, payload: { graceMs: 0 } });
    const next = await publish(topic);
    await waitFor(statusIs(next, 'delivered'), 'delivered');
    const [nextHit] = sink.hitsFor(next);
    expect(String(nextHit!.headers['webhook-signature']).split(' ')).toHaveLength(1);
    expect(new Webhook(noGrace.json().secret).verify(nextHit!.body, nextHit!.headers as Record<string, string>)).toEqual({ n: 1 });
  });

  it('never sends a delivery twice for duplicate jobs', async () => {
    const topic = unique('dup.jobs');
    await subscribe({ topic, target: { type: 'webhook', url: sink.url('/dup') } });
    const id = await publish(topic, { n: 1 }, { delayMs: 300 });
    const [row] = (await app.mysql.query('SELECT id FROM deliveries WHERE message_id = ?', [id]))[0] as Array<{ id: string }>;
    // Extra jobs for the same attempt, under other ids, as a confused replica might add.
    const duplicates = Array.from({ length: 5 }, (_, i) => `dup-${id}-${i}`);
    const queue = new Queue(DELIVERY_QUEUE, { connection: { url: REDIS_URL }, prefix: queuePrefix });
    try {
      for (const jobId of duplicates) await queue.add('deliver', { deliveryId: Number(row!.id), generation: 0, attempt: 0 }, { jobId, delay: 300 });
      await waitFor(statusIs(id, 'delivered'), 'delivered');
      // Every duplicate job has run (or been dropped): any second send would have happened by now.
      const finished = ['completed', 'failed', 'unknown'];
      await waitFor(async () => (await Promise.all(duplicates.map((j) => queue.getJobState(j)))).every((state) => finished.includes(state)), 'the duplicate jobs to finish');
    } finally {
      await queue.close();
    }
    expect(sink.hitsFor(id)).toHaveLength(1);
  });
});

describe('RabbitMQ delivery', () => {
  it('publishes persistent messages with the message id, content type and herald headers', async () => {
    const exchange = unique('herald.test.x');
    const consumer = await startAmqpConsumer(exchange);
    try {
      const topic = unique('amqp.topic');
      await subscribe({ topic, target: { type: 'rabbitmq', exchange } });
      const id = await publish(topic, { orderId: 7 }, { key: 'order-7', headers: { 'x-tenant': 'acme' } });
      await waitFor(statusIs(id, 'delivered'), 'delivered');
      await waitFor(() => consumer.received.length === 1, 'consumed');
      const msg = consumer.received[0]!;
      expect(JSON.parse(msg.content.toString())).toEqual({ orderId: 7 });
      expect(msg.fields.routingKey).toBe(topic);
      expect(msg.properties).toMatchObject({ messageId: id, contentType: 'application/json', deliveryMode: 2 });
      expect(msg.properties.headers).toMatchObject({ 'herald-topic': topic, 'herald-key': 'order-7', 'herald-attempt': '1', 'x-tenant': 'acme' });
    } finally {
      await consumer.close();
    }
  });

  it('uses the subscription’s routing key when it has one', async () => {
    const exchange = unique('herald.test.rk');
    const consumer = await startAmqpConsumer(exchange, { bindingKey: 'fixed.key' });
    try {
      const topic = unique('amqp.rk');
      await subscribe({ topic, target: { type: 'rabbitmq', exchange, routingKey: 'fixed.key' } });
      const id = await publish(topic);
      await waitFor(statusIs(id, 'delivered'), 'delivered');
      await waitFor(() => consumer.received.length === 1, 'consumed');
      expect(consumer.received[0]!.fields.routingKey).toBe('fixed.key');
    } finally {
      await consumer.close();
    }
  });

  it('treats an unroutable message as failed, never delivered, and ends dead', async () => {
    const exchange = unique('herald.test.noq');
    const consumer = await startAmqpConsumer(exchange, { bindingKey: 'only.this.key' });
    try {
      const topic = unique('amqp.unroutable');
      await subscribe({ topic, maxAttempts: 2, target: { type: 'rabbitmq', exchange } });
      const id = await publish(topic);
      await waitFor(statusIs(id, 'failed'), 'failed');
      const [delivery] = await deliveriesOf(id);
      expect(delivery.status).toBe('dead');
      expect(delivery.attemptsLog).toHaveLength(2);
      expect(delivery.attemptsLog.every((a: { ok: boolean }) => !a.ok)).toBe(true);
      expect(delivery.lastError).toContain(`unroutable: no queue is bound to exchange "${exchange}" for routing key "${topic}"`);
      expect(consumer.received).toHaveLength(0);
    } finally {
      await consumer.close();
    }
  });

  it('reports a missing exchange on the delivery without disturbing other publishes', async () => {
    const exchange = unique('herald.test.ok');
    const consumer = await startAmqpConsumer(exchange);
    try {
      const topic = unique('amqp.mixed');
      await subscribe({ topic, maxAttempts: 2, target: { type: 'rabbitmq', exchange: unique('no.such.exchange') } });
      await subscribe({ topic, target: { type: 'rabbitmq', exchange } });
      const ids = await Promise.all(Array.from({ length: 10 }, () => publish(topic)));
      for (const id of ids) await waitFor(statusIs(id, 'failed'), `${id} failed`);
      for (const id of ids) {
        const statuses = (await getMessage(id)).deliveries.map((d: { status: string; lastError: string | null }) => [d.status, d.lastError]);
        expect(statuses).toContainEqual(['delivered', null]);
        expect(statuses.find(([s]: string[]) => s === 'dead')?.[1]).toMatch(/exchange "no\.such\.exchange-[0-9a-f]+" does not exist/);
      }
      await waitFor(() => consumer.received.length === 10, 'all ten consumed');
      expect(new Set(consumer.received.map((m) => m.properties.messageId))).toEqual(new Set(ids));
    } finally {
      await consumer.close();
    }
  });
});

describe('subscriptions API', () => {
  it('creates, lists, gets, patches and deletes, never showing the secret after creation', async () => {
    const created = await subscribe({ name: 'crud', topic: 'crud.#', target: { type: 'webhook', url: sink.url('/crud') } });
    const got = (await app.inject({ url: `/v1/subscriptions/${created.id}`, headers: asAdmin })).json();
    expect(got).toMatchObject({ id: created.id, name: 'crud', topic: 'crud.#', enabled: true, maxAttempts: 5, backoff: { initialMs: 50, maxMs: 200 } });
    expect(got.secret).toBeUndefined();
    const patched = await app.inject({ method: 'PATCH', url: `/v1/subscriptions/${created.id}`, headers: asAdmin, payload: { enabled: false, topic: 'crud.*' } });
    expect(patched.json()).toMatchObject({ enabled: false, topic: 'crud.*' });
    const listed = (await app.inject({ url: '/v1/subscriptions?limit=500', headers: asAdmin })).json();
    expect(listed.items.map((s: { id: string }) => s.id)).toContain(created.id);
    expect(listed.items.every((s: { secret?: string }) => s.secret === undefined)).toBe(true);
    expect((await app.inject({ method: 'DELETE', url: `/v1/subscriptions/${created.id}`, headers: asAdmin })).statusCode).toBe(204);
    expect((await app.inject({ url: `/v1/subscriptions/${created.id}`, headers: asAdmin })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: `/v1/subscriptions/${created.id}`, headers: asAdmin })).statusCode).toBe(404);
  });

  it('pages through subscriptions', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: Array<{ id: string }>; nextCursor: string | null } = (await app.inject({ url: `/v1/subscriptions?limit=3${cursor ? `&cursor=${cursor}` : ''}`, headers: asAdmin })).json();
      seen.push(...page.items.map((s: { id: string }) => s.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    const all = (await app.inject({ url: '/v1/subscriptions?limit=500', headers: asAdmin })).json().items.map((s: { id: string }) => s.id);
    expect(seen).toEqual(all);
  });

  it('is admin only', async () => {
    expect((await app.inject({ url: '/v1/subscriptions', headers: asProducer })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asProducer, payload: {} })).statusCode).toBe(403);
  });

  it.each([
    [{ topic: 'a..b' }, 'topic'],
    [{ topic: 'a.b#' }, 'topic'],
    [{ target: { type: 'webhook', url: 'ftp://x/y' } }, 'target.url'],
    [{ target: { type: 'webhook', url: 'https://u:p@x/y' } }, 'target.url'],
    [{ target: { type: 'webhook', url: 'https://x/y', headers: { 'webhook-id': 'x' } } }, 'target.headers.webhook-id'],
    [{ target: { type: 'smtp', to: 'x' } }, 'target'],
    [{ target: { type: 'rabbitmq', exchange: 'bad exchange' } }, 'target.exchange'],
    [{ target: { type: 'rabbitmq', exchange: 'x', extra: 1 } }, 'target.extra'],
    [{ target: { type: 'webhook' } }, 'target.url'],
    [{ target: false }, 'target'],
    [{ target: 'webhook' }, 'target'],
    [{ target: {} }, 'target.type'],
    [{ maxAttempts: 0 }, 'maxAttempts'],
    [{ backoff: { initialMs: 1 } }, 'backoff.initialMs'],
    [{ name: '' }, 'name'],
    [{ color: 'red' }, 'color'],
  ])('refuses %j naming %s', async (change, field) => {
    const res = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'x', topic: 'a.b', target: { type: 'webhook', url: 'https://x/y' }, ...change } });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().field).toBe(field);
  });
});

describe('delivery metrics', () => {
  it('counts attempts and finished deliveries by target, and exposes queue depth and dead count', async () => {
    // One message with a delivery of each outcome, so this test does not rely on the ones before it.
    const topic = unique('metrics.all');
    const exchange = unique('herald.test.metrics');
    const consumer = await startAmqpConsumer(exchange);
    try {
      await subscribe({ topic, target: { type: 'webhook', url: sink.url('/metrics') } });
      await subscribe({ topic, maxAttempts: 1, target: { type: 'webhook', url: 'http://127.0.0.1:9/refused' } });
      await subscribe({ topic, target: { type: 'rabbitmq', exchange } });
      await subscribe({ topic, maxAttempts: 1, target: { type: 'rabbitmq', exchange: unique('no.such.exchange') } });
      const id = await publish(topic);
      const finished = async () => ((await deliveriesOf(id)) as Array<{ status: string }>).map((d) => d.status).sort().join();
      await waitFor(async () => (await finished()) === 'dead,dead,delivered,delivered', 'two deliveries delivered and two dead');
    } finally {
      await consumer.close();
    }
    const text = (await app.inject({ url: '/metrics' })).body;
    const value = (series: string) => metricValue(text, series);
    expect(value('herald_delivery_attempts_total{target="webhook",outcome="success"}')).toBeGreaterThan(0);
    expect(value('herald_delivery_attempts_total{target="webhook",outcome="failure"}')).toBeGreaterThan(0);
    expect(value('herald_deliveries_finished_total{target="rabbitmq",status="delivered"}')).toBeGreaterThan(0);
    expect(value('herald_deliveries_finished_total{target="rabbitmq",status="dead"}')).toBeGreaterThan(0);
    expect(value('herald_delivery_attempt_duration_seconds_count{target="webhook"}')).toBeGreaterThan(0);
    expect(text).toMatch(/^herald_delivery_queue_jobs\{state="delayed"\} \d+$/m);
    const [rows] = await app.mysql.query("SELECT COUNT(*) AS n FROM deliveries WHERE status = 'dead'");
    expect(value('herald_deliveries_dead')).toBe(Number((rows as Array<{ n: string }>)[0]?.n));
  });
});
