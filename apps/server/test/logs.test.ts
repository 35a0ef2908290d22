import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp, loggerOptions } from '../src/app';
import { parseConfig } from '../src/config';
import { ADMIN_TOKEN, PRODUCER_TOKEN, TEST_CHECK_SECRET, asAdmin, asProducer, createTestDatabase, testEnv } from './helpers';
import { startCheckEndpoint, startWebhookSink, waitFor } from '@herald/test-support';

// Things that must never reach a log line, whatever the level.
const PAYLOAD_MARKER = `payload-marker-${randomBytes(6).toString('hex')}`;
const HEADER_MARKER = `header-marker-${randomBytes(6).toString('hex')}`;
const WRONG_TOKEN = `wrong-token-${randomBytes(8).toString('hex')}`;

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sink: Awaited<ReturnType<typeof startWebhookSink>>;
let producer: Awaited<ReturnType<typeof startWebhookSink>>;
const lines: string[] = [];
const checkAnswers = new Map<string, string>();

beforeAll(async () => {
  db = await createTestDatabase('log');
  sink = await startWebhookSink();
  producer = await startCheckEndpoint(checkAnswers);
  // The service's own logger configuration, at the most verbose level, written to memory.
  const config = parseConfig(testEnv(db.url, { HERALD_LOG_LEVEL: 'trace', HERALD_CHECK_SWEEP_INTERVAL_MS: '100', HERALD_WEBHOOK_TIMEOUT_MS: '2000' }));
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  app = await buildApp(config, { logger: { ...loggerOptions(config), stream } });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await sink?.close();
  await producer?.close();
  await db?.drop();
});

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
type Line = Record<string, unknown> & { msg?: string; level: number };

describe('structured logs', () => {
  it('bind every line about a message to its messageId (deliveries and checks to theirs) and never carry payloads, headers, tokens or secrets', async () => {
    const topic = unique('log.topic');
    // /dead always fails; /retried fails the first attempt of `failOnce`'s message, then succeeds.
    let failOnce: string | undefined = undefined;
    let successes = 0;
    sink.respond((hit, res) => {
      if (hit.path === '/dead') return void res.writeHead(500).end();
      if (hit.headers['webhook-id'] === failOnce && hit.headers['herald-attempt'] === '1') return void res.writeHead(502).end();
      successes++;
      res.writeHead(200).end();
    });
    const subscribe = async (path: string, maxAttempts: number) => {
      const res = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'log', topic, maxAttempts, backoff: { initialMs: 50, maxMs: 100 }, target: { type: 'webhook', url: sink.url(path) } } });
      expect(res.statusCode, res.body).toBe(201);
      return res.json() as { id: string; secret: string };
    };
    const retried = await subscribe('/retried', 5);
    const dead = await subscribe('/dead', 1);

    const prepare = async (extra: Record<string, unknown> = {}) => {
      const id = unique('log');
      const res = await app.inject({
        method: 'POST',
        url: '/v1/messages',
        headers: asProducer,
        payload: { id, topic, payload: { marker: PAYLOAD_MARKER }, headers: { 'x-tenant': HEADER_MARKER }, checkUrl: producer.url('/check'), checkAfterMs: 60_000, ...extra },
      });
      expect(res.statusCode, res.body).toBe(201);
      return id;
    };
    const confirmed = await prepare();
    failOnce = confirmed;
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${confirmed}/confirm`, headers: asProducer })).statusCode).toBe(200);
    const committed = await prepare({ checkAfterMs: 200 });
    checkAnswers.set(committed, 'commit');
    const held = await prepare({ checkAfterMs: 200, maxChecks: 1, onChecksExhausted: 'hold' });
    // A prepare without an id: the id Herald makes is bound too.
    const generated = await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { topic, payload: { marker: PAYLOAD_MARKER }, confirm: true } });
    expect(generated.statusCode).toBe(201);
    const generatedId = generated.json().id as string;
    // Reads, a refusal, a conflict and an unknown token.
    expect((await app.inject({ url: `/v1/messages/${confirmed}`, headers: asProducer })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${confirmed}/cancel`, headers: asProducer })).statusCode).toBe(409);
    expect((await app.inject({ url: `/v1/messages/${confirmed}/deliveries`, headers: { authorization: `Bearer ${WRONG_TOKEN}` } })).statusCode).toBe(401);
    expect((await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id: unique('log'), topic: 'bad topic', payload: { marker: PAYLOAD_MARKER } } })).statusCode).toBe(400);

    const status = async (id: string) => ((await app.mysql.query('SELECT status FROM messages WHERE id = ?', [id]))[0] as Array<{ status: string }>)[0]?.status;
    await waitFor(async () => (await status(confirmed)) === 'failed' && (await status(committed)) === 'failed' && (await status(held)) === 'unresolved' && (await status(generatedId)) === 'failed', 'the scenario to settle');
    await waitFor(() => successes >= 3, 'the deliveries to /retried to succeed'); // confirmed (after one failure), committed, generated
    // The lines a job writes after its commit may still be on their way: wait for the last ones the checks below expect.
    const has = (id: string, msg: string, n = 1) => lines.filter((l) => l.includes(id) && (JSON.parse(l) as Line).msg === msg).length >= n;
    await waitFor(
      () => has(confirmed, 'delivered') && has(confirmed, 'delivery is dead') && has(generatedId, 'request completed') && has(held, 'checks exhausted: the message is unresolved until a person confirms or cancels it') && has(committed, 'check answered'),
      'the last log lines',
    );

    const parsed = lines.map((l) => JSON.parse(l) as Line);
    expect(parsed.length).toBeGreaterThan(20);
    const ids = [confirmed, committed, held, generatedId];
    for (const id of ids) {
      const about = lines.map((raw, i) => ({ raw, line: parsed[i]! })).filter(({ raw }) => raw.includes(id));
      expect(about.length, id).toBeGreaterThan(0);
      // Every line that mentions the message names it in `messageId`.
      for (const { line } of about) expect(line.messageId, JSON.stringify(line)).toBe(id);
    }
    const of = (id: string, msg: string) => parsed.filter((l) => l.messageId === id && l.msg === msg);
    // Request lines, from the first ("incoming request", whose URL shows the id) to the last.
    expect(of(confirmed, 'incoming request').length).toBeGreaterThanOrEqual(4);
    expect(of(confirmed, 'request completed').length).toBeGreaterThanOrEqual(5);
    expect(of(generatedId, 'request completed')).toHaveLength(1);
    // Deliveries carry their delivery and subscription; checks their number.
    expect(of(confirmed, 'delivery attempt failed; retrying later')).toEqual([
      expect.objectContaining({ subscriptionId: retried.id, deliveryId: expect.any(Number), attempt: 1, statusCode: 502, target: 'webhook' }),
    ]);
    expect(of(confirmed, 'delivery is dead')).toEqual([expect.objectContaining({ subscriptionId: dead.id, deliveryId: expect.any(Number), attempt: 1 })]);
    expect(of(confirmed, 'delivered')).toEqual([expect.objectContaining({ subscriptionId: retried.id, attempt: 2, statusCode: 200 })]);
    expect(of(committed, 'check answered')).toEqual([expect.objectContaining({ check: 1, answer: 'commit', outcome: 'confirmed' })]);
    expect(of(held, 'check answered unknown')).toEqual([expect.objectContaining({ check: 1, answer: 'unknown', outcome: 'held' })]);
    expect(of(held, 'checks exhausted: the message is unresolved until a person confirms or cancels it')).toHaveLength(1);

    // Secrets and content never appear, at any level.
    const all = lines.join('\n');
    for (const secret of [PAYLOAD_MARKER, HEADER_MARKER, ADMIN_TOKEN, PRODUCER_TOKEN, WRONG_TOKEN, retried.secret, dead.secret, TEST_CHECK_SECRET]) {
      expect(all, secret.slice(0, 12)).not.toContain(secret);
    }
    // Nor the base64 key inside a whsec_ secret, nor any signature.
    for (const secret of [retried.secret, dead.secret, TEST_CHECK_SECRET]) expect(all).not.toContain(secret.slice('whsec_'.length));
    expect(all).not.toContain('webhook-signature');
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

/** A port where every connection is accepted and reset at once, counting the attempts. */
async function resettingPort(): Promise<{ port: number; attempts: () => number; close: () => Promise<void> }> {
  let attempts = 0;
  const server = createServer((socket) => {
    attempts += 1;
    socket.resetAndDestroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { port, attempts: () => attempts, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('logs while MySQL and Redis are down', () => {
  it('name the message of a failed prepare, and say once (not on every reconnect) that Redis is unreachable', async () => {
    const downLines: Line[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        downLines.push(...chunk.toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line));
        done();
      },
    });
    const redis = await resettingPort();
    const config = parseConfig(testEnv(`mysql://root@127.0.0.1:${await closedPort()}/herald_down`, { REDIS_URL: `redis://127.0.0.1:${redis.port}`, HERALD_LOG_LEVEL: 'info' }));
    const down = await buildApp(config, { logger: { ...loggerOptions(config), stream } });
    await down.ready();
    try {
      const id = unique('log-down');
      const res = await down.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id, topic: 'log.down', payload: {}, confirm: true } });
      expect(res.statusCode, res.body).toBe(503);
      expect(downLines.filter((l) => l.msg === 'backing service unavailable')).toEqual([expect.objectContaining({ messageId: id, level: 40 })]);

      // Many reconnects (ioredis retries after 50, 100, 150 … ms), each failing, and still one line.
      await waitFor(() => redis.attempts() >= 60, 'sixty failed Redis connection attempts');
      const workerErrors = downLines.filter((l) => String(l.msg).startsWith('worker error'));
      expect(workerErrors.length).toBeGreaterThan(0);
      const perQueue = new Map<unknown, number>();
      for (const l of workerErrors) perQueue.set(l.queue, (perQueue.get(l.queue) ?? 0) + 1);
      for (const [queue, n] of perQueue) expect(n, String(queue)).toBe(1);
    } finally {
      // The pool ends with its connection attempts failing; that is not what this tests.
      await down.close().catch(() => undefined);
      await redis.close();
    }
  });
});
