import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldClient } from './client';
import { HeraldApiError, HeraldNetworkError } from './errors';

// A real HTTP server whose answers each test scripts; it records every request it gets.
type Answer = (req: IncomingMessage, res: ServerResponse, body: string) => void;
let script: Answer[] = [];
const seen: Array<{ method: string; url: string; auth: string | undefined; body: string }> = [];
let baseUrl: string;
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body });
    (script.shift() ?? json(200, {}))(req, res, body);
  });
});
function json(status: number, value: unknown, headers: Record<string, string> = {}): Answer {
  return (_req, res) => res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(value));
}
const hangUp: Answer = (req) => req.socket.destroy();

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const client = (attempts = 4) => new HeraldClient({ baseUrl, token: 'tok-123', retry: { attempts, initialDelayMs: 5, maxDelayMs: 20 } });
function reset(...answers: Answer[]) {
  script = answers;
  seen.length = 0;
}

describe('HeraldClient', () => {
  it('sends the bearer token, the path with an encoded id, and the JSON body', async () => {
    reset(json(201, { id: 'a:b', status: 'prepared' }));
    const message = await client().prepare({ id: 'a:b', topic: 'order.paid', payload: { n: 1 }, checkUrl: 'http://x/check' });
    expect(message).toMatchObject({ id: 'a:b' });
    expect(seen).toEqual([{ method: 'POST', url: '/v1/messages', auth: 'Bearer tok-123', body: JSON.stringify({ id: 'a:b', topic: 'order.paid', payload: { n: 1 }, checkUrl: 'http://x/check' }) }]);
    reset(json(200, { id: 'a:b' }));
    await client().confirm('a:b');
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/v1/messages/a%3Ab/confirm', body: '' });
  });

  it('names the tenant of an id for admin and viewer calls when asked, and only then', async () => {
    reset(json(200, { id: 'a:b' }));
    await client().getMessage('a:b', { tenant: 'team-a' });
    await client().cancel('a:b', { tenant: 'team-a' });
    await client().getMessage('a:b');
    expect(seen.map((s) => s.url)).toEqual(['/v1/messages/a%3Ab?tenant=team-a', '/v1/messages/a%3Ab/cancel?tenant=team-a', '/v1/messages/a%3Ab']);
  });

  it('retries an idempotent call through a hang-up and 503s, with the same id every time', async () => {
    reset(hangUp, json(503, { statusCode: 503, error: 'Service Unavailable', message: 'MySQL unavailable' }), json(200, { id: 'p-1' }));
    await client().prepare({ topic: 'order.paid', payload: 1, checkUrl: 'http://x/check' });
    expect(seen).toHaveLength(3);
    const ids = seen.map((s) => (JSON.parse(s.body) as { id: string }).id);
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('does not retry a 4xx, and reports the service error body', async () => {
    reset(json(409, { statusCode: 409, error: 'Conflict', message: 'message m is cancelled; it cannot be confirmed' }));
    const err = await client().confirm('m').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HeraldApiError);
    expect(err).toMatchObject({ status: 409, body: { message: 'message m is cancelled; it cannot be confirmed' } });
    expect(seen).toHaveLength(1);
  });

  it('gives up after the configured attempts with a network error naming the operation', async () => {
    reset(hangUp, hangUp, hangUp);
    const err = await client(3).cancel('m').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HeraldNetworkError);
    expect((err as Error).message).toMatch(/^cancelMessage: Herald unreachable after 3 attempt/);
    expect(seen).toHaveLength(3);
  });

  it('never retries a call that is not idempotent (creating a subscription twice would make two)', async () => {
    reset(json(503, { statusCode: 503, error: 'x', message: 'y' }), json(201, {}));
    await expect(client().createSubscription({ name: 'n', topic: 't', target: { type: 'webhook', url: 'http://x' } })).rejects.toMatchObject({ status: 503 });
    expect(seen).toHaveLength(1);
  });

  it('honours Retry-After in seconds fully, beyond the backoff cap', async () => {
    reset(json(429, { statusCode: 429, error: 'Too Many Requests', message: 'slow down' }, { 'retry-after': '1' }), json(200, { id: 'm' }));
    const c = new HeraldClient({ baseUrl, retry: { attempts: 2, initialDelayMs: 1, maxDelayMs: 20 } });
    const started = Date.now();
    await c.getMessage('m');
    expect(Date.now() - started).toBeGreaterThanOrEqual(990);
    expect(seen).toHaveLength(2);
  });

  it('honours Retry-After as an HTTP date', async () => {
    // HTTP dates have whole seconds: 3 s ahead is at least 2 s of waiting.
    const at = new Date(Date.now() + 3_000).toUTCString();
    reset(json(503, { statusCode: 503, error: 'Service Unavailable', message: 'busy' }, { 'retry-after': at }), json(200, { id: 'm' }));
    const c = new HeraldClient({ baseUrl, retry: { attempts: 2, initialDelayMs: 1, maxDelayMs: 20 } });
    const started = Date.now();
    await c.getMessage('m');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_990);
    expect(seen).toHaveLength(2);
  });

  it('gives up with the last error at once when Retry-After would pass the overall deadline', async () => {
    reset(json(429, { statusCode: 429, error: 'Too Many Requests', message: 'slow down' }, { 'retry-after': '30' }), json(200, { id: 'm' }));
    const c = new HeraldClient({ baseUrl, retry: { attempts: 5, initialDelayMs: 1, maxDelayMs: 20, deadlineMs: 2_000 } });
    const started = Date.now();
    await expect(c.getMessage('m')).rejects.toMatchObject({ status: 429 });
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(seen).toHaveLength(1);
  });

  it('deleteSubscription: a 404 after a lost answer is success; a 404 on the first attempt is not', async () => {
    reset(hangUp, json(404, { statusCode: 404, error: 'Not Found', message: 'no subscription s' }));
    await expect(client().deleteSubscription('s')).resolves.toBeUndefined();
    expect(seen.map((r) => r.method)).toEqual(['DELETE', 'DELETE']);
    reset(json(404, { statusCode: 404, error: 'Not Found', message: 'no subscription s' }));
    await expect(client().deleteSubscription('s')).rejects.toMatchObject({ status: 404 });
    expect(seen).toHaveLength(1);
  });

  it('passes list filters as a query string and returns readiness 503 as an answer', async () => {
    reset(json(200, { items: [], nextCursor: null }), json(503, { status: 'unavailable', checks: {} }));
    await client().listMessages({ status: 'prepared', topic: 'order.paid', limit: 10 });
    expect(seen[0]?.url).toBe('/v1/messages?status=prepared&topic=order.paid&limit=10');
    expect(await client().readiness()).toEqual({ status: 'unavailable', checks: {} });
  });
});
