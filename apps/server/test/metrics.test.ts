import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { API_KEYS, asAdmin, asProducer, buildTestApp, createTestDatabase, metricValue } from './helpers';
import { startCheckEndpoint, startWebhookSink, waitFor } from '@herald/test-support';

// A fresh app and database, so every counter starts at zero and the scenario's numbers are exact.
let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sink: Awaited<ReturnType<typeof startWebhookSink>>;
let producer: Awaited<ReturnType<typeof startWebhookSink>>;
const checkAnswers = new Map<string, string>();
// A second tenant's producer (test-only token): the scenario's events must not be counted as its.
const OTHER_TOKEN = 'test-other-tenant-token-00000000';
const asOther = { authorization: `Bearer ${OTHER_TOKEN}` };

beforeAll(async () => {
  db = await createTestDatabase('met');
  sink = await startWebhookSink();
  producer = await startCheckEndpoint(checkAnswers);
  app = await buildTestApp(db.url, { HERALD_CHECK_SWEEP_INTERVAL_MS: '100', HERALD_WEBHOOK_TIMEOUT_MS: '2000', HERALD_API_KEYS: `${API_KEYS},other:producer:${OTHER_TOKEN}` });
});
afterAll(async () => {
  await app?.close();
  await sink?.close();
  await producer?.close();
  await db?.drop();
});

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

/** Polls MySQL, not the API, so the HTTP counters count the scenario's requests only. */
async function statusOf(id: string): Promise<string | undefined> {
  const [rows] = await app.mysql.query('SELECT status FROM messages WHERE id = ?', [id]);
  return (rows as Array<{ status: string }>)[0]?.status;
}
const reaches = (id: string, status: string) => waitFor(async () => (await statusOf(id)) === status, `${id} ${status}`);

describe('metrics after a known scenario', () => {
  it('count exactly what happened: requests, transitions, attempts and outcomes, checks, backlogs', async () => {
    const retried = unique('met.retried');
    const doomed = unique('met.doomed');
    const quiet = unique('met.quiet');
    let retriedCalls = 0;
    sink.respond((hit, res) => {
      // The first attempt to /retried fails, the second succeeds; /doomed always fails.
      if (hit.path === '/retried') return void res.writeHead(++retriedCalls === 1 ? 500 : 200).end();
      res.writeHead(503).end();
    });
    for (const [topic, path, maxAttempts] of [[retried, '/retried', 5], [doomed, '/doomed', 1]] as const) {
      const res = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'm', topic, maxAttempts, backoff: { initialMs: 50, maxMs: 100 }, target: { type: 'webhook', url: sink.url(path) } } });
      expect(res.statusCode, res.body).toBe(201);
    }

    const prepare = async (topic: string, extra: Record<string, unknown> = {}) => {
      const id = unique('met');
      const res = await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id, topic, payload: { id }, checkUrl: producer.url('/check'), checkAfterMs: 60_000, ...extra } });
      expect(res.statusCode, res.body).toBe(201);
      return id;
    };
    // 5 prepares: 2 confirmed by the API, 1 cancelled, 1 committed by its check, 1 held unresolved.
    const delivered = await prepare(retried);
    const dead = await prepare(doomed);
    const cancelled = await prepare(quiet);
    const committedByCheck = await prepare(quiet, { checkAfterMs: 200 });
    checkAnswers.set(committedByCheck, 'commit');
    const held = await prepare(quiet, { checkAfterMs: 200, maxChecks: 1, onChecksExhausted: 'hold' });
    for (const [id, verb] of [[delivered, 'confirm'], [dead, 'confirm'], [cancelled, 'cancel']] as const) {
      expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/${verb}`, headers: asProducer })).statusCode).toBe(200);
    }
    await reaches(delivered, 'delivered');
    await reaches(dead, 'failed');
    await reaches(committedByCheck, 'confirmed');
    await reaches(held, 'unresolved');
    const expected: Record<string, number> = {
      'herald_http_requests_total{method="POST",route="/v1/subscriptions",status_code="201"}': 2,
      'herald_http_requests_total{method="POST",route="/v1/messages",status_code="201"}': 5,
      'herald_http_requests_total{method="POST",route="/v1/messages/:id/confirm",status_code="200"}': 2,
      'herald_http_requests_total{method="POST",route="/v1/messages/:id/cancel",status_code="200"}': 1,
      'herald_http_request_duration_seconds_count{method="POST",route="/v1/messages"}': 5,
      'herald_http_request_duration_seconds_count{method="POST",route="/v1/messages/:id/confirm"}': 2,
      'herald_message_transitions_total{from="new",to="prepared"}': 5,
      'herald_message_transitions_total{from="prepared",to="confirmed"}': 3,
      'herald_message_transitions_total{from="prepared",to="cancelled"}': 1,
      'herald_message_transitions_total{from="prepared",to="unresolved"}': 1,
      'herald_delivery_attempts_total{target="webhook",outcome="success"}': 1,
      'herald_delivery_attempts_total{target="webhook",outcome="failure"}': 2,
      'herald_delivery_attempt_duration_seconds_count{target="webhook"}': 3,
      'herald_deliveries_finished_total{target="webhook",status="delivered"}': 1,
      'herald_deliveries_finished_total{target="webhook",status="dead"}': 1,
      'herald_checks_total{answer="commit"}': 1,
      'herald_checks_total{answer="unknown"}': 1,
      // The same, by tenant: every event was the default tenant's; the other tenant's series
      // exist from the start, at 0.
      'herald_tenant_decisions_total{tenant="default",to="confirmed"}': 3,
      'herald_tenant_decisions_total{tenant="default",to="cancelled"}': 1,
      'herald_tenant_decisions_total{tenant="default",to="unresolved"}': 1,
      'herald_tenant_checks_total{tenant="default",answer="commit"}': 1,
      'herald_tenant_checks_total{tenant="default",answer="unknown"}': 1,
      'herald_tenant_checks_total{tenant="default",answer="rollback"}': 0,
      'herald_tenant_deliveries_finished_total{tenant="default",status="delivered"}': 1,
      'herald_tenant_deliveries_finished_total{tenant="default",status="dead"}': 1,
      'herald_tenant_decisions_total{tenant="other",to="confirmed"}': 0,
      'herald_tenant_decisions_total{tenant="other",to="cancelled"}': 0,
      'herald_tenant_checks_total{tenant="other",answer="unknown"}': 0,
      'herald_tenant_deliveries_finished_total{tenant="other",status="dead"}': 0,
      herald_check_duration_seconds_count: 2,
      herald_deliveries_dead: 1,
      herald_deliveries_pending: 0,
      herald_messages_unresolved: 1,
      herald_messages_prepared: 0,
      herald_delivery_enqueue_failures_total: 0,
      herald_trace_export_failures_total: 0,
      'herald_delivery_queue_jobs{state="waiting"}': 0,
      'herald_delivery_queue_jobs{state="delayed"}': 0,
      'herald_delivery_queue_jobs{state="active"}': 0,
      'herald_delivery_queue_jobs{state="failed"}': 0,
      'herald_check_queue_jobs{state="failed"}': 0,
    };
    // The last job's bookkeeping (metrics after the commit) may still be running: scrape until
    // the values match (or time runs out), then compare, so a mismatch shows every series.
    let text = '';
    const value = (series: string) => metricValue(text, series);
    const seen = () => Object.fromEntries(Object.keys(expected).map((series) => [series, value(series)]));
    await waitFor(async () => {
      const res = await app.inject({ url: '/metrics' });
      expect(res.statusCode).toBe(200);
      text = res.body;
      return JSON.stringify(seen()) === JSON.stringify(expected);
    }, 'the metrics to settle', 5_000).catch(() => undefined);
    expect(seen()).toEqual(expected);
    // Nothing that did not happen: no rollback answers, no other outcome, no other transition.
    expect(text).not.toMatch(/^herald_checks_total\{answer="rollback"\}/m);
    expect(text).not.toMatch(/^herald_message_transitions_total\{from="new",to="confirmed"\}/m);
    expect(text.match(/^herald_message_transitions_total\{/gm)).toHaveLength(4);
    expect(text.match(/^herald_delivery_attempts_total\{/gm)).toHaveLength(2);
    // The check queue holds only the scheduled sweep now (the next one, perhaps the running one too).
    const sweeps = ['waiting', 'delayed', 'active'].map((state) => value(`herald_check_queue_jobs{state="${state}"}`)).reduce((a, b) => a + b, 0);
    expect(sweeps).toBeGreaterThanOrEqual(1);
    expect(sweeps).toBeLessThanOrEqual(2);
    // No label carries a topic or a message id (unbounded label sets).
    for (const id of [retried, doomed, quiet, delivered, dead, held]) expect(text).not.toContain(id);
  });

  it("counts another tenant's decisions, checks and dead deliveries under that tenant only", async () => {
    const scrape = async () => (await app.inject({ url: '/metrics' })).body;
    const series = [
      'herald_tenant_decisions_total{tenant="other",to="cancelled"}',
      'herald_tenant_decisions_total{tenant="default",to="cancelled"}',
      'herald_tenant_checks_total{tenant="other",answer="rollback"}',
      'herald_tenant_checks_total{tenant="default",answer="rollback"}',
      'herald_tenant_deliveries_finished_total{tenant="other",status="dead"}',
      'herald_tenant_deliveries_finished_total{tenant="default",status="dead"}',
    ];
    const values = (text: string) => series.map((s) => metricValue(text, s));
    const before = values(await scrape());
    // Only the scenario's doomed topic's subscription exists for a dead delivery: reuse it.
    const doomed = (await app.inject({ url: '/v1/subscriptions', headers: asAdmin })).json().items.find((s: { target: { url?: string } }) => s.target.url?.endsWith('/doomed')).topic as string;
    const prepare = async (topic: string, extra: Record<string, unknown> = {}) => {
      const id = unique('oth');
      const res = await app.inject({ method: 'POST', url: '/v1/messages', headers: asOther, payload: { id, topic, payload: { id }, checkUrl: producer.url('/check'), checkAfterMs: 60_000, ...extra } });
      expect(res.statusCode, res.body).toBe(201);
      return id;
    };
    const cancelled = await prepare('met.other');
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${cancelled}/cancel`, headers: asOther })).statusCode).toBe(200);
    const rolledBack = await prepare('met.other', { checkAfterMs: 200 });
    checkAnswers.set(rolledBack, 'rollback');
    const dead = await prepare(doomed);
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${dead}/confirm`, headers: asOther })).statusCode).toBe(200);
    await reaches(rolledBack, 'cancelled');
    await reaches(dead, 'failed');
    const expected = [before[0]! + 2, before[1], before[2]! + 1, before[3], before[4]! + 1, before[5]];
    let after: number[] = [];
    await waitFor(async () => JSON.stringify((after = values(await scrape()))) === JSON.stringify(expected), 'the tenant counters to settle', 5_000).catch(() => undefined);
    expect(Object.fromEntries(series.map((s, i) => [s, after[i]]))).toEqual(Object.fromEntries(series.map((s, i) => [s, expected[i]])));
  });

  it('counts write batches that left the batch path, by kind and reason', async () => {
    // An app and a database of its own: the scenario above counts its app's totals exactly.
    const own = await createTestDatabase('metdup');
    const target = await buildTestApp(own.url, { HERALD_ROLE: 'api' });
    try {
      const series = 'herald_write_batch_fallbacks_total{kind="prepare",reason="duplicate"}';
      // The series appears with its first increment.
      const scrape = async () => metricValue((await target.inject({ url: '/metrics' })).body, series) || 0;
      const before = await scrape();
      const id = unique('metdup');
      const body = { id, topic: 'met.dup', payload: { id }, checkUrl: producer.url('/check'), checkAfterMs: 60_000 };
      expect((await target.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: body })).statusCode).toBe(201);
      expect((await target.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: body })).statusCode).toBe(200);
      expect(await scrape()).toBe(before + 1);
    } finally {
      await target.close();
      await own.drop();
    }
  });
});

/** A port nothing listens on (connections are refused). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A server that accepts connections and never answers: a hung Redis or MySQL. */
async function blackHole() {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function timedScrape(target: FastifyInstance) {
  const started = Date.now();
  const res = await target.inject({ url: '/metrics' });
  return { res, ms: Date.now() - started };
}

describe('a scrape while Redis or MySQL is unreachable', () => {
  it('answers within 2 s, scrape after scrape, with Redis refusing connections', async () => {
    const down = await buildTestApp(db.url, { REDIS_URL: `redis://127.0.0.1:${await closedPort()}` });
    try {
      for (let i = 0; i < 3; i++) {
        const { res, ms } = await timedScrape(down);
        expect(res.statusCode).toBe(200);
        expect(ms).toBeLessThan(2_000);
        // MySQL is up: its gauges are there, read this time.
        expect(metricValue(res.body, 'herald_deliveries_pending')).toBe(0);
      }
    } finally {
      await down.close();
    }
  });

  it('answers within 2 s with Redis and MySQL accepting connections but never answering', async () => {
    const redis = await blackHole();
    const mysql = await blackHole();
    const hung = await buildTestApp(`mysql://root@127.0.0.1:${mysql.port}/herald_hung`, { REDIS_URL: `redis://127.0.0.1:${redis.port}`, HERALD_ROLE: 'api' });
    try {
      for (let i = 0; i < 3; i++) {
        const { res, ms } = await timedScrape(hung);
        expect(res.statusCode).toBe(200);
        expect(ms).toBeLessThan(2_000);
        expect(res.body).toContain('herald_http_requests_total');
      }
    } finally {
      // The pool's connection attempt to the black hole fails as the pool ends; that is not what this tests.
      await hung.close().catch(() => undefined);
      await Promise.all([redis.close(), mysql.close()]);
    }
  });
});
