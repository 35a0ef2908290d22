import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app';
import { parseConfig } from '../src/config';
import { asAdmin, asProducer, buildTestApp, createTestDatabase, prepareBody, testEnv } from './helpers';

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let stored: unknown;

beforeAll(async () => {
  db = await createTestDatabase('bad');
  app = await buildTestApp(db.url, { HERALD_MAX_BODY_BYTES: '4096' });
  const res = await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('keep-me') });
  stored = res.json();
});
afterAll(async () => {
  // Nothing any bad request below did may have changed or lost the stored message.
  const after = await app.inject({ method: 'GET', url: '/v1/messages/keep-me', headers: asProducer });
  expect(after.json()).toEqual({ ...(stored as object), checkAttempts: [] });
  // Only the two valid prepares below stored anything.
  const [rows] = await app.mysql.query('SELECT id FROM messages ORDER BY id');
  expect((rows as Array<{ id: string }>).map((r) => r.id)).toEqual(['keep-me', 'ssrf-ok']);
  await app.close();
  await db.drop();
});

const post = (payload: unknown, headers: Record<string, string> = asProducer) =>
  app.inject({ method: 'POST', url: '/v1/messages', headers: { 'content-type': 'application/json', ...headers }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });

function expect400(res: Awaited<ReturnType<typeof post>>, field: string, reason: RegExp) {
  expect(res.statusCode, res.body).toBe(400);
  const body = res.json();
  expect(body.error).toBe('Bad Request');
  expect(body.field).toBe(field);
  expect(body.message).toMatch(reason);
}

describe('authentication', () => {
  it('answers 401 without a token, with a malformed header, or with an unknown token', async () => {
    for (const headers of <Array<Record<string, string>>>[{}, { authorization: 'Basic abc' }, { authorization: 'Bearer' }, { authorization: 'Bearer not-a-known-token-00000000' }]) {
      const res = await post(prepareBody('auth-1'), headers);
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toBe('Unauthorized');
    }
  });

  it('checks the token before reading the body', async () => {
    expect((await post('{not json', {})).statusCode).toBe(401);
  });

  it('answers 403 when a producer token calls an admin route', async () => {
    for (const [method, url] of [['POST', '/v1/subscriptions'], ['GET', '/v1/subscriptions'], ['POST', '/v1/messages/keep-me/redeliver']] as const) {
      const denied = await app.inject({ method, url, headers: asProducer, payload: method === 'POST' ? {} : undefined });
      expect(denied.statusCode, url).toBe(403);
      expect(denied.json().message).toBe('the producer role may not use this route; it needs admin');
    }
    expect((await app.inject({ url: '/v1/subscriptions', headers: asAdmin })).statusCode).toBe(200);
  });

  it('answers 401 without a token on every /v1 route in the spec, and serves the rest without one', async () => {
    const spec = (await app.inject({ url: '/docs/json' })).json() as { paths: Record<string, Record<string, unknown>> };
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const method of Object.keys(methods)) {
        const url = path.replace('{id}', path.startsWith('/v1/subscriptions') ? 'sub_0123456789abcdef0123' : 'keep-me');
        const res = await app.inject({ method: method.toUpperCase() as 'GET', url });
        expect(res.statusCode, `${method} ${path}`).toBe(path.startsWith('/v1/') ? 401 : 200);
      }
    }
  });

  it('keeps a route that forgets to declare access closed (admin only)', async () => {
    const other = await buildApp(parseConfig(testEnv(db.url)), { logger: false, worker: false });
    other.get('/v1/forgot-access', async () => ({ ok: true }));
    await other.ready();
    try {
      expect((await other.inject({ url: '/v1/forgot-access' })).statusCode).toBe(401);
      expect((await other.inject({ url: '/v1/forgot-access', headers: asProducer })).statusCode).toBe(403);
      expect((await other.inject({ url: '/v1/forgot-access', headers: asAdmin })).statusCode).toBe(200);
    } finally {
      await other.close();
    }
  });
});

describe('ids and topics', () => {
  it.each([
    ['has.a.dot', /A-Z a-z 0-9 _ : -/],
    ['with space', /A-Z a-z 0-9 _ : -/],
    ['ünïcode', /A-Z a-z 0-9 _ : -/],
    ['tab\there', /A-Z a-z 0-9 _ : -/],
    ['', /fewer than 1|A-Z/],
    ['x'.repeat(129), /more than 128/],
  ])('refuses id %j', async (id, reason) => {
    expect400(await post(prepareBody(id)), 'id', reason);
  });

  it.each(['', '.leading', 'trailing.', 'double..dot', 'sp ace', 'semi;colon', 'a'.repeat(201), 'nul\u0000byte', 'emoji🚀'])('refuses topic %j', async (topic) => {
    expect400(await post(prepareBody('t-1', { topic })), 'topic', /topic/);
  });

  it('refuses ids that are not strings', async () => {
    expect400(await post(prepareBody('x', { id: 12 })), 'id', /must be string/);
  });

  it('refuses a bad id in the path', async () => {
    const res = await app.inject({ method: 'POST', url: `/v1/messages/${'y'.repeat(129)}/confirm`, headers: asProducer });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/^params\.id/);
    const dot = await app.inject({ method: 'GET', url: '/v1/messages/a.b', headers: asProducer });
    expect(dot.json().field).toBe('id');
  });
});

describe('fields', () => {
  it('requires topic and payload', async () => {
    const { topic: _t, ...noTopic } = prepareBody('f-1');
    expect400(await post(noTopic), 'topic', /is required/);
    const { payload: _p, ...noPayload } = prepareBody('f-1');
    expect400(await post(noPayload), 'payload', /is required/);
  });

  it('requires a checkUrl unless confirm is true', async () => {
    const { checkUrl: _c, ...body } = prepareBody('f-2');
    expect400(await post(body), 'checkUrl', /required unless confirm is true/);
    expect400(await post({ ...body, confirm: false }), 'checkUrl', /required unless confirm is true/);
  });

  it.each([
    ['ftp://host/x', /http/],
    ['not a url', /URL|http/],
    ['/relative/path', /URL|http/],
    ['https://user:secret@host/check', /credentials/],
    ['http://', /URL|http/],
  ])('refuses checkUrl %j', async (checkUrl, reason) => {
    expect400(await post(prepareBody('f-3', { checkUrl })), 'checkUrl', reason);
  });

  it.each([
    ['checkAfterMs', -1], ['checkAfterMs', 7 * 24 * 3600_000 + 1], ['checkAfterMs', 1.5], ['checkAfterMs', '1000'],
    ['checkIntervalMs', 99], ['checkIntervalMs', 24 * 3600_000 + 1],
    ['maxChecks', 0], ['maxChecks', 101], ['maxChecks', '5'], ['maxChecks', null],
    ['delayMs', -5], ['delayMs', 7 * 24 * 3600_000 + 1],
    ['onChecksExhausted', 'retry'], ['confirm', 'yes'], ['key', ''], ['key', 'k'.repeat(257)], ['key', 'line\nbreak'],
  ])('refuses %s = %j without coercing it', async (field, value) => {
    expect400(await post(prepareBody('f-4', { [field]: value })), field, new RegExp(`^body\\.${field} must (be|NOT be|NOT have|match|equal)`));
  });

  it('refuses unknown fields instead of dropping them', async () => {
    expect400(await post(prepareBody('f-5', { chekUrl: 'http://x/y' })), 'chekUrl', /not a known field/);
  });

  it('refuses bad header maps', async () => {
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`x-h${i}`, 'v']));
    expect400(await post(prepareBody('h-1', { headers: many })), 'headers', /more than 32/);
    expect400(await post(prepareBody('h-2', { headers: { 'bad name': 'v' } })), 'headers.bad name', /not an allowed name/);
    expect400(await post(prepareBody('h-3', { headers: { 'x-a': 'line\r\nInjected: 1' } })), 'headers.x-a', /printable ASCII or tab/);
    expect400(await post(prepareBody('h-3b', { headers: { 'x-a': '中文' } })), 'headers.x-a', /printable ASCII or tab/);
    expect400(await post(prepareBody('h-4', { headers: { 'x-a': 'v'.repeat(1025) } })), 'headers.x-a', /more than 1024/);
    expect400(await post(prepareBody('h-5', { headers: { 'x-a': 5 } })), 'headers.x-a', /must be string/);
    expect400(await post(prepareBody('h-6', { headers: { 'herald-topic': 'spoof' } })), 'headers.herald-topic', /reserved/);
    expect400(await post(prepareBody('h-7', { headers: { 'Webhook-Signature': 'v1,x' } })), 'headers.Webhook-Signature', /reserved/);
    expect400(await post(prepareBody('h-8', { headers: ['x'] })), 'headers', /object/);
  });

  it('refuses payloads nested deeper than 64 levels', async () => {
    let payload: unknown = 1;
    for (let i = 0; i < 65; i++) payload = { a: payload };
    expect400(await post(prepareBody('deep', { payload })), 'payload', /deeper than 64/);
  });
});

describe('private URLs (HERALD_ALLOW_PRIVATE_URLS off, the default)', () => {
  it('refuses check and webhook URLs on loopback, private and link-local addresses', async () => {
    const strict = await buildApp(parseConfig(testEnv(db.url, { HERALD_ALLOW_PRIVATE_URLS: 'false' })), { logger: false, worker: false });
    await strict.ready();
    try {
      // The IPv6 forms embed an internal IPv4 address or are not global unicast (they passed before).
      const ipv6Forms = ['http://[64:ff9b::a9fe:a9fe]/', 'http://[2002:7f00:1::]/', 'http://[::127.0.0.1]/', 'http://[::ffff:0:7f00:1]/', 'http://[fec0::1]/'];
      for (const checkUrl of ['http://127.0.0.1:8080/check', 'http://169.254.169.254/latest/meta-data/', 'http://[::1]/c', 'http://192.168.0.10/c', 'http://localhost/c', ...ipv6Forms]) {
        const res = await strict.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('ssrf', { checkUrl }) });
        expect(res.statusCode, checkUrl).toBe(400);
        expect(res.json()).toMatchObject({ field: 'checkUrl' });
        expect(res.json().message).toMatch(/HERALD_ALLOW_PRIVATE_URLS/);
      }
      for (const url of ['http://10.0.0.7/hook', ...ipv6Forms]) {
        const sub = await strict.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'x', topic: 'a', target: { type: 'webhook', url } } });
        expect(sub.statusCode, url).toBe(400);
        expect(sub.json().field).toBe('target.url');
      }
      const ok = await strict.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('ssrf-ok', { checkUrl: 'https://orders.example.com/check' }) });
      expect(ok.statusCode).toBe(201);
    } finally {
      await strict.close();
    }
  });
});

describe('bodies', () => {
  it('answers 400 for malformed JSON', async () => {
    const res = await post('{"topic": "a", ');
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/^body is not valid JSON/);
  });

  it('answers 400 when the body is not an object', async () => {
    for (const body of ['[]', '"text"', '42', 'null']) {
      const res = await post(body);
      expect(res.statusCode, body).toBe(400);
      expect(res.json().message).toMatch(/^body must be object/);
    }
  });

  it('answers 400 for an empty body', async () => {
    expect((await post('')).json().message).toBe('body must be object');
  });

  it('refuses prototype poisoning', async () => {
    const res = await post('{"__proto__": {"admin": true}, "topic": "a", "payload": 1, "confirm": true}');
    expect(res.statusCode).toBe(400);
  });

  it('takes the last of duplicate JSON keys, as JSON.parse does, and validates that', async () => {
    const res = await post('{"id": "dup-keys", "topic": "ok.topic", "topic": "bad topic", "payload": 1, "confirm": true}');
    expect400(res, 'topic', /topic/);
  });

  it('answers 413 above HERALD_MAX_BODY_BYTES, naming the limit', async () => {
    const res = await post(prepareBody('big', { payload: 'x'.repeat(5000) }));
    expect(res.statusCode).toBe(413);
    expect(res.json().message).toBe('request body exceeds the limit of 4096 bytes (HERALD_MAX_BODY_BYTES)');
  });

  it('answers 415 for a body that is not JSON', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/messages', headers: { ...asProducer, 'content-type': 'text/plain' }, payload: 'hello' });
    expect(res.statusCode).toBe(415);
  });
});

describe('routes', () => {
  it('answers 404 with the error shape for an unknown route', async () => {
    const res = await app.inject({ method: 'GET', url: '/v2/nothing?x=1', headers: asProducer });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ statusCode: 404, error: 'Not Found', message: 'no route GET /v2/nothing' });
  });

  it('answers 404 for a wrong method on a known path', async () => {
    expect((await app.inject({ method: 'DELETE', url: '/v1/messages/keep-me', headers: asProducer })).statusCode).toBe(404);
  });
});
