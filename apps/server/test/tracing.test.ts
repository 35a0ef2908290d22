import { randomBytes } from 'node:crypto';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import type { FastifyInstance } from 'fastify';
import { TEST_CHECK_SECRET, asAdmin, asProducer, buildTestApp, createTestDatabase, metricValue, testPrefix } from './helpers';
import { startOtlpReceiver, type ReceivedSpan } from './otlp-receiver';
import { startAmqpConsumer, startCheckEndpoint, startWebhookSink, waitFor, type Hit } from '@herald/test-support';

// OTLP's span kinds (the wire enum, not the API's).
const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;

const FAST = { HERALD_CHECK_SWEEP_INTERVAL_MS: '100', HERALD_RECONCILE_INTERVAL_MS: '200', HERALD_RECONCILE_GRACE_MS: '500', HERALD_WEBHOOK_TIMEOUT_MS: '2000' };

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const unique = (prefix: string) => `${prefix}-${hex(4)}`;
/** A producer's own span, as its tracing library would send it. */
const producerSpan = (traceId = hex(16)) => ({ traceId, spanId: hex(8), header: '' as string });
const traceparent = (s: { traceId: string; spanId: string }) => `00-${s.traceId}-${s.spanId}-01`;

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
let sink: Awaited<ReturnType<typeof startWebhookSink>>;
let producer: Awaited<ReturnType<typeof startWebhookSink>>;
let app: FastifyInstance;
/** The producer's check endpoint answers this per message id (default unknown). */
const answers = new Map<string, string>();

beforeAll(async () => {
  db = await createTestDatabase('trc');
  receiver = await startOtlpReceiver();
  sink = await startWebhookSink();
  producer = await startCheckEndpoint(answers);
  app = await buildTestApp(db.url, { ...FAST, HERALD_TRACING: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: 'herald-test', OTEL_BSP_SCHEDULE_DELAY: '50' });
});
afterAll(async () => {
  await app?.close();
  await Promise.all([receiver?.close(), sink?.close(), producer?.close()]);
  await db?.drop();
});

async function subscribe(target: FastifyInstance, topic: string, to: Record<string, unknown>) {
  const res = await target.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'trace', topic, maxAttempts: 5, backoff: { initialMs: 50, maxMs: 100 }, target: to } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as { id: string; secret?: string };
}

async function prepare(target: FastifyInstance, topic: string, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}) {
  const id = unique('trc');
  const res = await target.inject({
    method: 'POST',
    url: '/v1/messages',
    headers: { ...asProducer, ...headers },
    payload: { id, topic, payload: { id }, checkUrl: producer.url('/check'), checkAfterMs: 60_000, ...extra },
  });
  expect(res.statusCode, res.body).toBe(201);
  return id;
}

/** Waits for a value that is there (waitFor, typed for checks that answer undefined until then). */
const until = <T>(check: () => T | undefined, what: string) => waitFor(check, what) as Promise<T>;
const named = (spans: ReceivedSpan[], name: string) => spans.filter((s) => s.name === name);
const one = (spans: ReceivedSpan[], name: string) => {
  const found = named(spans, name);
  expect(found, `${name} in ${spans.map((s) => s.name).join(', ')}`).toHaveLength(1);
  return found[0]!;
};

describe('tracing on (OTLP/HTTP JSON to a local receiver)', () => {
  it('follows one message from the producer through prepare, confirm and every delivery attempt, and hands the trace to the consumers', async () => {
    const topic = unique('trace.e2e');
    const exchange = unique('herald.trace');
    const amqp = await startAmqpConsumer(exchange);
    try {
      const sub = await subscribe(app, topic, { type: 'webhook', url: sink.url('/traced') });
      await subscribe(app, topic, { type: 'rabbitmq', exchange });
      // The webhook fails once, then succeeds: two attempts, two spans, two traceparents.
      let calls = 0;
      sink.respond((_hit, res) => void res.writeHead(++calls === 1 ? 500 : 200).end());

      const atPrepare = producerSpan();
      const id = await prepare(app, topic, { traceparent: traceparent(atPrepare), tracestate: 'shop=a1' });
      const atConfirm = producerSpan(atPrepare.traceId);
      const confirmed = await app.inject({ method: 'POST', url: `/v1/messages/${id}/confirm`, headers: { ...asProducer, traceparent: traceparent(atConfirm) } });
      expect(confirmed.statusCode).toBe(200);

      const hits = await until(() => (sink.hitsFor(id).length === 2 ? sink.hitsFor(id) : undefined), 'two webhook attempts');
      const [published] = await until(() => (amqp.received.length === 1 ? amqp.received : undefined), 'the AMQP message');
      const spans = await until(() => {
        const s = receiver.spansOf(id);
        return named(s, 'deliver webhook').length === 2 && named(s, 'deliver rabbitmq').length === 1 && named(s, 'POST /v1/messages/:id/confirm').length === 1 ? s : undefined;
      }, 'the spans of the message');

      const prepareSpan = one(spans, 'POST /v1/messages');
      const confirmSpan = one(spans, 'POST /v1/messages/:id/confirm');
      const webhookSpans = named(spans, 'deliver webhook');
      const rabbitSpan = one(spans, 'deliver rabbitmq');
      // One trace: the producer's.
      expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([atPrepare.traceId]));
      expect(spans.every((s) => s.serviceName === 'herald-test')).toBe(true);
      // The request spans continue the producer's spans; every delivery attempt is a child of the prepare span stored with the message.
      expect(prepareSpan).toMatchObject({ parentSpanId: atPrepare.spanId, kind: SERVER, attributes: { 'http.request.method': 'POST', 'http.route': '/v1/messages', 'http.response.status_code': 201 } });
      expect(confirmSpan).toMatchObject({ parentSpanId: atConfirm.spanId, kind: SERVER, attributes: { 'http.response.status_code': 200 } });
      for (const s of [...webhookSpans, rabbitSpan]) expect(s.parentSpanId).toBe(prepareSpan.spanId);
      expect(webhookSpans.map((s) => s.kind)).toEqual([CLIENT, CLIENT]);
      expect(rabbitSpan).toMatchObject({ kind: PRODUCER, attributes: { 'messaging.system': 'rabbitmq', 'messaging.destination.name': exchange, 'herald.outcome': 'delivered' } });
      expect(webhookSpans.map((s) => s.attributes['herald.attempt']).sort()).toEqual([1, 2]);
      const failed = webhookSpans.find((s) => s.attributes['herald.attempt'] === 1)!;
      expect(failed).toMatchObject({ attributes: { 'http.response.status_code': 500, 'herald.outcome': 'retry', 'herald.subscription.id': sub.id }, status: { code: 2 } });

      // Each attempt tells the consumer its own span, so the consumer's work continues the trace.
      for (const hit of hits) {
        const attempt = Number(hit.headers['herald-attempt']);
        const span = webhookSpans.find((s) => s.attributes['herald.attempt'] === attempt)!;
        expect(hit.headers.traceparent).toBe(`00-${atPrepare.traceId}-${span.spanId}-01`);
        // The trace headers are not signed: the signature still verifies.
        expect(new Webhook(sub.secret!).verify(hit.body, hit.headers as Record<string, string>)).toEqual({ id });
      }
      expect(published!.properties.headers?.traceparent).toBe(`00-${atPrepare.traceId}-${rabbitSpan.spanId}-01`);
    } finally {
      sink.respond((_hit, res) => void res.writeHead(200).end('ok'));
      await amqp.close();
    }
  });

  it('a check-back call and the delivery it leads to join the trace of the prepare; the producer gets the check span as parent', async () => {
    const topic = unique('trace.check');
    await subscribe(app, topic, { type: 'webhook', url: sink.url('/checked') });
    const atPrepare = producerSpan();
    const id = unique('trc');
    answers.set(id, 'commit');
    const res = await app.inject({
      method: 'POST',
      url: '/v1/messages',
      headers: { ...asProducer, traceparent: traceparent(atPrepare) },
      payload: { id, topic, payload: { id }, checkUrl: producer.url('/check'), checkAfterMs: 200, checkIntervalMs: 100 },
    });
    expect(res.statusCode).toBe(201);
    // Never confirmed: the check answers commit.
    const [hit] = await until(() => (sink.hitsFor(id).length === 1 ? sink.hitsFor(id) : undefined), 'delivery after the check');
    const spans = await until(() => {
      const s = receiver.spansOf(id);
      return named(s, 'check').length === 1 && named(s, 'deliver webhook').length === 1 ? s : undefined;
    }, 'check and delivery spans');
    const prepareSpan = one(spans, 'POST /v1/messages');
    const checkSpan = one(spans, 'check');
    const deliverSpan = one(spans, 'deliver webhook');
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([atPrepare.traceId]));
    expect(prepareSpan.parentSpanId).toBe(atPrepare.spanId);
    expect(checkSpan).toMatchObject({ parentSpanId: prepareSpan.spanId, kind: CLIENT, attributes: { 'herald.check': 1, 'herald.check.answer': 'commit', 'herald.outcome': 'confirmed', 'http.response.status_code': 200 } });
    expect(deliverSpan.parentSpanId).toBe(prepareSpan.spanId);

    const [call] = producer.hits.filter((h: Hit) => h.headers['herald-message-id'] === id);
    expect(call!.headers.traceparent).toBe(`00-${atPrepare.traceId}-${checkSpan.spanId}-01`);
    expect(new Webhook(TEST_CHECK_SECRET).verify(call!.body, call!.headers as Record<string, string>)).toMatchObject({ id, check: 1 });
    expect(hit!.headers.traceparent).toBe(`00-${atPrepare.traceId}-${deliverSpan.spanId}-01`);
  });

  it('a confirm without a traceparent joins the message’s stored trace; a cancel from another trace continues that one and links the message’s', async () => {
    const topic = unique('trace.join');
    const atPrepare = producerSpan();
    const confirmedId = await prepare(app, topic, { traceparent: traceparent(atPrepare) });
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${confirmedId}/confirm`, headers: asProducer })).statusCode).toBe(200);

    // No producer trace at all: the prepare starts one, and the cancel, from elsewhere, links it.
    const cancelledId = await prepare(app, topic);
    const elsewhere = producerSpan();
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${cancelledId}/cancel`, headers: { ...asProducer, traceparent: traceparent(elsewhere) } })).statusCode).toBe(200);

    const confirmed = await until(() => (receiver.spansOf(confirmedId).length === 2 ? receiver.spansOf(confirmedId) : undefined), 'prepare and confirm spans');
    const prepared = one(confirmed, 'POST /v1/messages');
    expect(one(confirmed, 'POST /v1/messages/:id/confirm')).toMatchObject({ traceId: atPrepare.traceId, parentSpanId: prepared.spanId, links: [] });

    const cancelled = await until(() => (receiver.spansOf(cancelledId).length === 2 ? receiver.spansOf(cancelledId) : undefined), 'prepare and cancel spans');
    const root = one(cancelled, 'POST /v1/messages');
    expect(root.parentSpanId ?? '').toBe('');
    expect(one(cancelled, 'POST /v1/messages/:id/cancel')).toMatchObject({
      traceId: elsewhere.traceId,
      parentSpanId: elsewhere.spanId,
      links: [{ traceId: root.traceId, spanId: root.spanId }],
    });
  });

  it('replaces trace headers the message or subscription carries (any letter case) with its own, to webhooks and RabbitMQ alike', async () => {
    const topic = unique('trace.dup');
    const exchange = unique('herald.tracedup');
    const amqp = await startAmqpConsumer(exchange);
    try {
      const foreign = traceparent(producerSpan());
      await subscribe(app, topic, { type: 'webhook', url: sink.url('/dup'), headers: { TraceParent: foreign, 'x-sub': 's1' } });
      await subscribe(app, topic, { type: 'rabbitmq', exchange });
      const atPrepare = producerSpan();
      const id = await prepare(app, topic, { traceparent: traceparent(atPrepare) }, { headers: { Traceparent: foreign, TRACESTATE: 'producer=1', 'x-tenant': 't1' } });
      expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/confirm`, headers: asProducer })).statusCode).toBe(200);

      const [hit] = await until(() => (sink.hitsFor(id).length === 1 ? sink.hitsFor(id) : undefined), 'the webhook delivery');
      const [published] = await until(() => (amqp.received.length === 1 ? amqp.received : undefined), 'the AMQP message');
      const spans = await until(() => {
        const s = receiver.spansOf(id);
        return named(s, 'deliver webhook').length === 1 && named(s, 'deliver rabbitmq').length === 1 ? s : undefined;
      }, 'the delivery spans');
      // Node joins repeated header names into one value ("a, b"): one value here means one header.
      expect(hit!.headers.traceparent).toBe(`00-${atPrepare.traceId}-${one(spans, 'deliver webhook').spanId}-01`);
      expect(hit!.headers).not.toHaveProperty('tracestate');
      expect(hit!.headers).toMatchObject({ 'x-tenant': 't1', 'x-sub': 's1' });
      const amqpHeaders = published!.properties.headers ?? {};
      expect(Object.keys(amqpHeaders).filter((n) => /^trace(parent|state)$/i.test(n))).toEqual(['traceparent']);
      expect(amqpHeaders.traceparent).toBe(`00-${atPrepare.traceId}-${one(spans, 'deliver rabbitmq').spanId}-01`);
      expect(amqpHeaders['x-tenant']).toBe('t1');
    } finally {
      await amqp.close();
    }
  });

  it('an idempotent retry of a prepare from another trace answers 200 and keeps the first trace; its own span links the message’s', async () => {
    const topic = unique('trace.retry');
    const first = producerSpan();
    const id = unique('trc');
    const body = { id, topic, payload: { id }, checkUrl: producer.url('/check'), checkAfterMs: 60_000 };
    const created = await app.inject({ method: 'POST', url: '/v1/messages', headers: { ...asProducer, traceparent: traceparent(first) }, payload: body });
    expect(created.statusCode).toBe(201);
    const storedTrace = async () => ((await app.mysql.query('SELECT trace_parent AS t FROM messages WHERE id = ?', [id]))[0] as Array<{ t: string | null }>)[0]?.t;
    const before = await storedTrace();
    expect(before).toMatch(new RegExp(`^00-${first.traceId}-[0-9a-f]{16}-01$`));

    const second = producerSpan();
    const retried = await app.inject({ method: 'POST', url: '/v1/messages', headers: { ...asProducer, traceparent: traceparent(second) }, payload: body });
    expect(retried.statusCode).toBe(200);
    expect(await storedTrace()).toBe(before);

    const spans = await until(() => (receiver.spansOf(id).length === 2 ? receiver.spansOf(id) : undefined), 'both prepare spans');
    const original = spans.find((s) => s.traceId === first.traceId)!;
    const retry = spans.find((s) => s.traceId === second.traceId)!;
    expect(original).toMatchObject({ parentSpanId: first.spanId, attributes: { 'http.response.status_code': 201 } });
    expect(before).toBe(`00-${first.traceId}-${original.spanId}-01`);
    expect(retry).toMatchObject({ parentSpanId: second.spanId, attributes: { 'http.response.status_code': 200 }, links: [{ traceId: first.traceId, spanId: original.spanId }] });
  });

  const valid = producerSpan();
  it.each([
    ['all-zero trace id', { traceparent: `00-${'0'.repeat(32)}-${valid.spanId}-01` }],
    ['all-zero span id', { traceparent: `00-${valid.traceId}-${'0'.repeat(16)}-01` }],
    ['version ff', { traceparent: `ff-${valid.traceId}-${valid.spanId}-01` }],
    ['an oversize traceparent', { traceparent: `00-${valid.traceId}-${valid.spanId}-01-${'f'.repeat(8_000)}` }],
    ['garbage', { traceparent: '\u00ff not-a-trace \t;;' }],
    ['garbage with an oversize tracestate', { traceparent: 'zz-zz', tracestate: `a=${'b'.repeat(8_000)}` }],
  ])('a prepare with %s still answers 201 and starts a trace of its own', async (_what, headers) => {
    const id = await prepare(app, unique('trace.hostile'), headers);
    const [row] = (await app.mysql.query('SELECT trace_parent AS t FROM messages WHERE id = ?', [id]))[0] as Array<{ t: string | null }>;
    const [span] = await until(() => (receiver.spansOf(id).length === 1 ? receiver.spansOf(id) : undefined), 'the prepare span');
    expect(span!.parentSpanId ?? '').toBe('');
    expect(span!.traceId).not.toBe(valid.traceId);
    expect(span!.traceId).not.toMatch(/^0+$/);
    expect(row?.t).toBe(`00-${span!.traceId}-${span!.spanId}-01`);
  });

  it('never returns the stored trace context in the API', async () => {
    const from = producerSpan();
    const id = await prepare(app, unique('trace.api'), { traceparent: traceparent(from) });
    const res = await app.inject({ url: `/v1/messages/${id}`, headers: asProducer });
    expect(res.json()).not.toHaveProperty('traceParent');
    expect(res.body).not.toContain(from.traceId);
    const listed = await app.inject({ url: '/v1/messages?limit=5', headers: asProducer });
    expect(listed.body).not.toContain(from.traceId);
    const [rows] = await app.mysql.query('SELECT trace_parent AS t FROM messages WHERE id = ?', [id]);
    expect((rows as Array<{ t: string | null }>)[0]?.t).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('joins the trace across processes: an API replica prepares and confirms, a worker replica delivers', async () => {
    // Its own database and queue prefix, so only this pair of replicas sees these messages.
    const pairDb = await createTestDatabase('trcpair');
    const shared = { ...FAST, HERALD_QUEUE_PREFIX: testPrefix(), HERALD_TRACING: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '50' };
    const api = await buildTestApp(pairDb.url, { ...shared, HERALD_ROLE: 'api', OTEL_SERVICE_NAME: 'herald-api' });
    const worker = await buildTestApp(pairDb.url, { ...shared, HERALD_ROLE: 'worker', OTEL_SERVICE_NAME: 'herald-worker' });
    try {
      const topic = unique('trace.pair');
      await subscribe(api, topic, { type: 'webhook', url: sink.url('/pair') });
      const atPrepare = producerSpan();
      const id = await prepare(api, topic, { traceparent: traceparent(atPrepare) });
      expect((await api.inject({ method: 'POST', url: `/v1/messages/${id}/confirm`, headers: asProducer })).statusCode).toBe(200);
      const [hit] = await until(() => (sink.hitsFor(id).length === 1 ? sink.hitsFor(id) : undefined), 'the delivery');
      const spans = await until(() => (receiver.spansOf(id).length === 3 ? receiver.spansOf(id) : undefined), 'three spans');
      const prepared = one(spans, 'POST /v1/messages');
      const delivered = one(spans, 'deliver webhook');
      expect(prepared.serviceName).toBe('herald-api');
      expect(one(spans, 'POST /v1/messages/:id/confirm')).toMatchObject({ serviceName: 'herald-api', parentSpanId: prepared.spanId });
      expect(delivered).toMatchObject({ serviceName: 'herald-worker', traceId: atPrepare.traceId, parentSpanId: prepared.spanId });
      expect(hit!.headers.traceparent).toBe(`00-${atPrepare.traceId}-${delivered.spanId}-01`);
    } finally {
      await api.close();
      await worker.close();
      await pairDb.drop();
    }
  });

  it('sends JSON to /v1/traces only', async () => {
    // Its own export, so the test does not depend on the others having run first.
    const id = await prepare(app, unique('trace.json'));
    await until(() => (receiver.spansOf(id).length === 1 ? true : undefined), 'the prepare span');
    expect(receiver.refused).toEqual([]);
  });
});

describe('tracing off', () => {
  it('records nothing, exports nothing and sends no traceparent, even with a collector configured and a producer traceparent', async () => {
    // A database of its own: the traced app's workers would otherwise check and deliver these messages too.
    const offDb = await createTestDatabase('trcoff');
    const quiet = await startOtlpReceiver();
    const off = await buildTestApp(offDb.url, { ...FAST, HERALD_TRACING: 'off', OTEL_EXPORTER_OTLP_ENDPOINT: quiet.url, OTEL_BSP_SCHEDULE_DELAY: '50' });
    try {
      expect(off.tracing.tracer).toBeUndefined();
      const topic = unique('trace.off');
      await subscribe(off, topic, { type: 'webhook', url: sink.url('/untraced') });
      const incoming = { traceparent: traceparent(producerSpan()) };
      const confirmedId = await prepare(off, topic, incoming);
      expect((await off.inject({ method: 'POST', url: `/v1/messages/${confirmedId}/confirm`, headers: { ...asProducer, ...incoming } })).statusCode).toBe(200);
      const checkedId = unique('trc');
      answers.set(checkedId, 'commit');
      const res = await off.inject({
        method: 'POST',
        url: '/v1/messages',
        headers: { ...asProducer, ...incoming },
        payload: { id: checkedId, topic, payload: {}, checkUrl: producer.url('/check'), checkAfterMs: 200 },
      });
      expect(res.statusCode).toBe(201);

      const delivered = await until(() => {
        const h = [...sink.hitsFor(confirmedId), ...sink.hitsFor(checkedId)];
        return h.length === 2 ? h : undefined;
      }, 'both deliveries');
      const checks = producer.hits.filter((h) => h.headers['herald-message-id'] === checkedId);
      expect(checks).toHaveLength(1);
      for (const hit of [...delivered, ...checks]) {
        expect(hit.headers).not.toHaveProperty('traceparent');
        expect(hit.headers).not.toHaveProperty('tracestate');
      }
      const [rows] = await off.mysql.query('SELECT trace_parent AS t FROM messages WHERE id IN (?, ?)', [confirmedId, checkedId]);
      expect((rows as Array<{ t: string | null }>).map((r) => r.t)).toEqual([null, null]);
    } finally {
      // Closing flushes any tracer there is: nothing may have reached the collector even then.
      await off.close();
      expect(quiet.requests()).toBe(0);
      await quiet.close();
      await offDb.drop();
    }
  });
});

/** A server that accepts connections and never answers: a black-holed collector. */
async function blackHole() {
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => sockets.size,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('an unreachable collector', () => {
  it('leaves requests unaffected and counts the failed exports (connection refused)', async () => {
    const gone = await startOtlpReceiver();
    const url = gone.url;
    await gone.close();
    const refusedDb = await createTestDatabase('trcgone');
    const traced = await buildTestApp(refusedDb.url, { HERALD_TRACING: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_BSP_SCHEDULE_DELAY: '50', HERALD_ROLE: 'api' });
    try {
      for (let i = 0; i < 5; i++) {
        const started = Date.now();
        await prepare(traced, unique('trace.gone'), { traceparent: traceparent(producerSpan()) });
        expect(Date.now() - started).toBeLessThan(1_000);
      }
      await until(async () => {
        const failures = metricValue((await traced.inject({ url: '/metrics' })).body, 'herald_trace_export_failures_total');
        return failures >= 1 ? failures : undefined;
      }, 'a failed export to be counted');
    } finally {
      await traced.close();
      await refusedDb.drop();
    }
  });

  it('does not hold up shutdown for longer than its own bound when the collector never answers', async () => {
    const hole = await blackHole();
    const holeDb = await createTestDatabase('trchole');
    const traced = await buildTestApp(holeDb.url, { HERALD_TRACING: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: hole.url, OTEL_BSP_SCHEDULE_DELAY: '60000', HERALD_ROLE: 'api' });
    try {
      const started = Date.now();
      await prepare(traced, unique('trace.hole'), { traceparent: traceparent(producerSpan()) });
      expect(Date.now() - started).toBeLessThan(1_000);
      // The span waits in the batch (long schedule delay): closing has to flush it into the black hole.
      const closing = Date.now();
      await traced.close();
      expect(hole.connections()).toBeGreaterThanOrEqual(1);
      expect(Date.now() - closing).toBeLessThan(4_500);
    } finally {
      await hole.close();
      await holeDb.drop();
    }
  }, 60_000);
});
