import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import type { FastifyInstance } from 'fastify';
import { ADMIN_TOKEN, TEST_CHECK_SECRET, asAdmin, buildTestApp, createTestDatabase } from './helpers';
import { startAmqpConsumer, startWebhookSink, waitFor, type Hit } from '@herald/test-support';

// Test-only tokens and secrets; they guard nothing outside these tests.
const P_TOKEN = 'tenant-p-token-00000000000000000';
const Q_TOKEN = 'tenant-q-token-00000000000000000';
const SCOPED_TOKEN = 'tenant-p-scoped-token-0000000000';
const VIEWER_TOKEN = 'viewer-token-0000000000000000000';
const SPARE_TOKEN = 'spare-token-00000000000000000000';
const Q_CHECK_SECRET = `whsec_${Buffer.from('tenant-q-check-secret-for-tests-only').toString('base64')}`;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const asP = { authorization: `Bearer ${P_TOKEN}` };
const asQ = { authorization: `Bearer ${Q_TOKEN}` };
const asScoped = { authorization: `Bearer ${SCOPED_TOKEN}` };
const asViewer = { authorization: `Bearer ${VIEWER_TOKEN}` };
const asSpare = { authorization: `Bearer ${SPARE_TOKEN}` };

const BASE_KEYS = [
  { name: 'p', role: 'producer', tenant: 'team-p', token: P_TOKEN },
  { name: 'q', role: 'producer', tenant: 'team-q', token: Q_TOKEN, checkSecret: Q_CHECK_SECRET },
  { name: 'p-orders', role: 'producer', tenant: 'team-p', topics: ['orders.*', 'audit.#'], token: SCOPED_TOKEN },
  { name: 'watch', role: 'viewer', tokenSha256: sha256(VIEWER_TOKEN) },
];
const SPARE_KEY = { name: 'spare', role: 'producer', tenant: 'team-s', token: SPARE_TOKEN };

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sink: Awaited<ReturnType<typeof startWebhookSink>>;
let checks: Awaited<ReturnType<typeof startWebhookSink>>;
let dir: string;
/** The path Herald reads: `dir/keys.json` → `dir/..data/keys.json`, `..data` a link to a version directory (a mounted Secret's layout). */
let keysPath: string;
let version = 0;

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

/** Publishes the keys as Kubernetes updates a mounted Secret: a new directory, then `..data` swapped to it by rename. */
async function swapKeys(text: string): Promise<void> {
  const next = join(dir, `..v${++version}`);
  await mkdir(next);
  await writeFile(join(next, 'keys.json'), text);
  await symlink(next, join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
}

/** Rewrites the file `..data` points at, in place. */
async function writeKeysInPlace(text: string): Promise<void> {
  await writeFile(join(dir, `..v${version}`, 'keys.json'), text);
}

const keysText = (keys: object[]) => JSON.stringify({ keys });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'herald-keys-'));
  await swapKeys(keysText([...BASE_KEYS, SPARE_KEY]));
  keysPath = join(dir, 'keys.json');
  await symlink(join(dir, '..data', 'keys.json'), keysPath);
  db = await createTestDatabase('ten');
  sink = await startWebhookSink();
  checks = await startWebhookSink((_hit, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"unknown"}'));
  app = await buildTestApp(db.url, {
    HERALD_API_KEYS: `ops:admin:${ADMIN_TOKEN}`,
    HERALD_API_KEYS_FILE: keysPath,
    HERALD_CHECK_SWEEP_INTERVAL_MS: '100',
    HERALD_RECONCILE_INTERVAL_MS: '200',
    HERALD_RECONCILE_GRACE_MS: '300',
  });
});
afterAll(async () => {
  await app?.close();
  await sink?.close();
  await checks?.close();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

async function prepare(headers: Record<string, string>, id: string, extra: Record<string, unknown> = {}) {
  return app.inject({ method: 'POST', url: '/v1/messages', headers, payload: { id, topic: 'orders.paid', payload: { id }, checkUrl: `http://127.0.0.1:9/check?token=${id}-secret`, checkAfterMs: 600_000, ...extra } });
}

async function subscribe(topic: string, target: Record<string, unknown>) {
  const res = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'tenants', topic, maxAttempts: 3, backoff: { initialMs: 50, maxMs: 200 }, target } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as { id: string; secret: string };
}

describe('isolation between tenants', () => {
  it('answers another tenant\'s message exactly as an unknown id on every message route, and leaves it untouched', async () => {
    const theirs = unique('q');
    const unknown = unique('none');
    expect((await prepare(asQ, theirs)).statusCode).toBe(201);
    const routes = [
      { method: 'GET' as const, url: (id: string) => `/v1/messages/${id}` },
      { method: 'GET' as const, url: (id: string) => `/v1/messages/${id}/deliveries` },
      { method: 'POST' as const, url: (id: string) => `/v1/messages/${id}/confirm` },
      { method: 'POST' as const, url: (id: string) => `/v1/messages/${id}/cancel` },
    ];
    for (const route of routes) {
      const other = await app.inject({ method: route.method, url: route.url(theirs), headers: asP });
      const none = await app.inject({ method: route.method, url: route.url(unknown), headers: asP });
      expect(other.statusCode, `${route.method} ${route.url('…')}`).toBe(404);
      expect(none.statusCode).toBe(404);
      // Byte for byte the answer for an unknown id, but for the id itself.
      expect(other.body.replaceAll(theirs, '<id>')).toBe(none.body.replaceAll(unknown, '<id>'));
      expect(other.body).not.toContain('secret');
    }
    // Naming the other tenant does not help a producer.
    expect((await app.inject({ url: `/v1/messages/${theirs}?tenant=team-q`, headers: asP })).statusCode).toBe(403);
    // Replay is for admins only; an admin naming the wrong tenant gets 404.
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${theirs}/redeliver`, headers: asP })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${theirs}/redeliver?tenant=team-p`, headers: asAdmin })).statusCode).toBe(404);

    const own = await app.inject({ url: `/v1/messages/${theirs}`, headers: asQ });
    expect(own.statusCode).toBe(200);
    expect(own.json()).toMatchObject({ tenant: 'team-q', status: 'prepared', checkUrl: `http://127.0.0.1:9/check?token=${theirs}-secret` });
  });

  it('lists only the producer\'s own tenant, and refuses a producer naming another', async () => {
    const mine = unique('p');
    const theirs = unique('q');
    expect((await prepare(asP, mine)).statusCode).toBe(201);
    expect((await prepare(asQ, theirs)).statusCode).toBe(201);
    const listed = (await app.inject({ url: '/v1/messages?limit=200', headers: asP })).json().items as Array<{ id: string; tenant: string }>;
    expect(listed.map((m) => m.id)).toContain(mine);
    expect(listed.map((m) => m.id)).not.toContain(theirs);
    expect(new Set(listed.map((m) => m.tenant))).toEqual(new Set(['team-p']));
    expect((await app.inject({ url: '/v1/messages?tenant=team-q', headers: asP })).statusCode).toBe(403);
  });

  it('keeps the same id in two tenants apart: both stored, each decided alone, delivered separately with distinct consumer ids', async () => {
    const topic = unique('same.topic');
    const exchange = unique('herald.tenants');
    const sub = await subscribe(topic, { type: 'webhook', url: sink.url('/same') });
    await subscribe(topic, { type: 'rabbitmq', exchange });
    const amqp = await startAmqpConsumer(exchange);
    try {
      const id = unique('same');
      expect((await prepare(asP, id, { topic })).statusCode).toBe(201);
      expect((await prepare(asQ, id, { topic })).statusCode).toBe(201);

      // An admin must say which one it means.
      const ambiguous = await app.inject({ url: `/v1/messages/${id}`, headers: asAdmin });
      expect(ambiguous.statusCode).toBe(409);
      expect(ambiguous.json().message).toContain('team-p, team-q');
      expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/cancel`, headers: asAdmin })).statusCode).toBe(409);

      // p confirms its own: q's stays prepared; q cancels its own: p's stays confirmed.
      expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/confirm`, headers: asP })).json()).toMatchObject({ tenant: 'team-p', status: 'confirmed' });
      expect((await app.inject({ url: `/v1/messages/${id}`, headers: asQ })).json()).toMatchObject({ tenant: 'team-q', status: 'prepared' });
      expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/cancel`, headers: asQ })).json()).toMatchObject({ tenant: 'team-q', status: 'cancelled' });
      await waitFor(async () => (await app.inject({ url: `/v1/messages/${id}?tenant=team-p`, headers: asAdmin })).json().status === 'delivered', 'p delivered');
      expect((await app.inject({ url: `/v1/messages/${id}?tenant=team-q`, headers: asAdmin })).json()).toMatchObject({ tenant: 'team-q', status: 'cancelled', deliveries: [] });

      // Now both tenants publish the id on the topic directly.
      const both = unique('both');
      expect((await app.inject({ method: 'POST', url: '/v1/messages', headers: asP, payload: { id: both, topic, payload: { from: 'p' }, confirm: true } })).statusCode).toBe(201);
      expect((await app.inject({ method: 'POST', url: '/v1/messages', headers: asQ, payload: { id: both, topic, payload: { from: 'q' }, confirm: true } })).statusCode).toBe(201);
      const hits = (await waitFor(() => {
        const found = sink.hits.filter((h) => String(h.headers['webhook-id']).endsWith(`/${both}`));
        return found.length === 2 ? found : undefined;
      }, 'both webhooks')) as Hit[];
      const byTenant = new Map(hits.map((h: Hit) => [h.headers['herald-tenant'], h]));
      expect(byTenant.get('team-p')?.headers['webhook-id']).toBe(`team-p/${both}`);
      expect(byTenant.get('team-q')?.headers['webhook-id']).toBe(`team-q/${both}`);
      expect(new Webhook(sub.secret).verify(byTenant.get('team-q')!.body, byTenant.get('team-q')!.headers as Record<string, string>)).toEqual({ from: 'q' });
      const published = (await waitFor(() => {
        const found = amqp.received.filter((m) => String(m.properties.messageId).endsWith(`/${both}`));
        return found.length === 2 ? found : undefined;
      }, 'both AMQP messages')) as typeof amqp.received;
      expect(published.map((m) => [m.properties.messageId, m.properties.headers?.['herald-tenant'], JSON.parse(m.content.toString())]).sort()).toEqual([
        [`team-p/${both}`, 'team-p', { from: 'p' }],
        [`team-q/${both}`, 'team-q', { from: 'q' }],
      ]);
      // Each tenant's deliveries are its own.
      for (const headers of [asP, asQ]) {
        const items = (await app.inject({ url: `/v1/messages/${both}/deliveries`, headers })).json().items;
        expect(items).toHaveLength(2);
      }
    } finally {
      await amqp.close();
    }
  });
});

describe('the routes main added since, under tenants', () => {
  it('keeps a producer to its own tenant when searching by key or creation time (guards against a filter that bypasses the tenant)', async () => {
    const key = unique('shared-key');
    const since = new Date(Date.now() - 1_000).toISOString();
    const mine = unique('p');
    const theirs = unique('q');
    expect((await prepare(asP, mine, { key })).statusCode).toBe(201);
    expect((await prepare(asQ, theirs, { key })).statusCode).toBe(201);
    for (const query of [`key=${key}`, `createdAfter=${encodeURIComponent(since)}&limit=200`]) {
      const listed = (await app.inject({ url: `/v1/messages?${query}`, headers: asP })).json().items as Array<{ id: string; tenant: string }>;
      expect(listed.map((m) => m.id), query).toContain(mine);
      expect(listed.map((m) => m.id), query).not.toContain(theirs);
    }
    // An admin sees both, and narrows to one tenant with ?tenant=.
    const both = (await app.inject({ url: `/v1/messages?key=${key}`, headers: asAdmin })).json().items as Array<{ id: string; tenant: string }>;
    expect(both.map((m) => `${m.tenant}/${m.id}`).sort()).toEqual([`team-p/${mine}`, `team-q/${theirs}`]);
    const onlyQ = (await app.inject({ url: `/v1/messages?key=${key}&tenant=team-q`, headers: asViewer })).json().items as Array<{ id: string }>;
    expect(onlyQ.map((m) => m.id)).toEqual([theirs]);
  });

  it('lets a viewer read the operations routes and refuses them to a producer', async () => {
    for (const url of ['/v1/stats', '/v1/audit', '/v1/stats/rates', '/v1/stats/subscriptions', '/v1/me']) {
      expect((await app.inject({ url, headers: asViewer })).statusCode, url).toBe(200);
    }
    expect((await app.inject({ url: '/v1/me', headers: asViewer })).json()).toEqual({ name: 'watch', role: 'viewer' });
    for (const url of ['/v1/stats', '/v1/audit', '/v1/stats/rates', '/v1/stats/subscriptions']) {
      expect((await app.inject({ url, headers: asP })).statusCode, url).toBe(403);
    }
  });

  it('names the tenant of the message an admin acted on in the audit log (guards against entries that cannot tell two tenants\' ids apart)', async () => {
    const id = unique('same');
    expect((await prepare(asP, id)).statusCode).toBe(201);
    expect((await prepare(asQ, id)).statusCode).toBe(201);
    // Held by two tenants: the admin must name one, and only that one is cancelled.
    expect((await app.inject({ method: 'POST', url: `/v1/messages/${id}/cancel`, headers: asAdmin, payload: { reason: 'x' } })).statusCode).toBe(409);
    const cancelled = await app.inject({ method: 'POST', url: `/v1/messages/${id}/cancel?tenant=team-q`, headers: asAdmin, payload: { reason: 'stale' } });
    expect(cancelled.statusCode, cancelled.body).toBe(200);
    expect((await app.inject({ url: `/v1/messages/${id}`, headers: asP })).json().status).toBe('prepared');
    const entries = (await app.inject({ url: `/v1/audit?targetType=message&targetId=${id}`, headers: asViewer })).json().items as Array<{ tenant: string | null; outcome: string }>;
    expect(entries).toEqual([expect.objectContaining({ tenant: 'team-q', outcome: 'prepared → cancelled', reason: 'stale' })]);
    const ofQ = (await app.inject({ url: '/v1/audit?tenant=team-q', headers: asAdmin })).json().items as Array<{ targetId: string }>;
    expect(ofQ.map((e) => e.targetId)).toContain(id);
    const ofP = (await app.inject({ url: '/v1/audit?tenant=team-p', headers: asAdmin })).json().items as Array<{ targetId: string }>;
    expect(ofP.map((e) => e.targetId)).not.toContain(id);
  });
});

describe('topic scopes', () => {
  it('lets a scoped key prepare and publish only on its topics, naming a refused topic', async () => {
    expect((await prepare(asScoped, unique('sc'), { topic: 'orders.paid' })).statusCode).toBe(201);
    expect((await prepare(asScoped, unique('sc'), { topic: 'audit.a.b' })).statusCode).toBe(201);
    const refused = await prepare(asScoped, unique('sc'), { topic: 'billing.paid' });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().message).toContain('billing.paid');
    const direct = await app.inject({ method: 'POST', url: '/v1/messages', headers: asScoped, payload: { id: unique('sc'), topic: 'orders.paid.late', payload: {}, confirm: true } });
    expect(direct.statusCode).toBe(403);
    // An unscoped key of the same tenant may use any topic.
    expect((await prepare(asP, unique('sc'), { topic: 'billing.paid' })).statusCode).toBe(201);
    // Counted by tenant: only what was stored.
    const metrics = (await app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/^herald_messages_stored_total\{tenant="team-p",status="prepared"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^herald_messages_stored_total\{tenant="team-q",status="prepared"\} [1-9]\d*$/m);
  });
});

describe('the viewer role', () => {
  it('reads everything, with each message\'s tenant and a tenant filter, and is refused every write', async () => {
    const mine = unique('v');
    expect((await prepare(asP, mine)).statusCode).toBe(201);
    const all = await app.inject({ url: '/v1/messages?limit=200', headers: asViewer });
    expect(all.statusCode).toBe(200);
    const tenants = new Set((all.json().items as Array<{ tenant: string }>).map((m) => m.tenant));
    expect(tenants.has('team-p') && tenants.has('team-q')).toBe(true);
    const onlyQ = (await app.inject({ url: '/v1/messages?tenant=team-q&limit=200', headers: asViewer })).json().items as Array<{ tenant: string }>;
    expect(onlyQ.length).toBeGreaterThan(0);
    expect(new Set(onlyQ.map((m) => m.tenant))).toEqual(new Set(['team-q']));
    expect((await app.inject({ url: `/v1/messages/${mine}`, headers: asViewer })).json()).toMatchObject({ id: mine, tenant: 'team-p' });
    expect((await app.inject({ url: '/v1/subscriptions', headers: asViewer })).statusCode).toBe(200);

    const writes = [
      { method: 'POST' as const, url: '/v1/messages', payload: { id: unique('v'), topic: 'orders.paid', payload: {}, confirm: true } },
      { method: 'POST' as const, url: `/v1/messages/${mine}/confirm?tenant=team-p` },
      { method: 'POST' as const, url: `/v1/messages/${mine}/cancel?tenant=team-p` },
      { method: 'POST' as const, url: `/v1/messages/${mine}/redeliver?tenant=team-p` },
      { method: 'POST' as const, url: '/v1/subscriptions', payload: { name: 'x', topic: 'x', target: { type: 'webhook', url: sink.url() } } },
    ];
    for (const w of writes) expect((await app.inject({ ...w, headers: asViewer })).statusCode, `${w.method} ${w.url}`).toBe(403);
    expect((await app.inject({ url: `/v1/messages/${mine}`, headers: asP })).json().status).toBe('prepared');
  });
});

describe('per-tenant check secrets', () => {
  it('signs a tenant\'s check calls with its own checkSecret, and others with HERALD_CHECK_SECRET', async () => {
    const ofQ = unique('chq');
    const ofP = unique('chp');
    expect((await prepare(asQ, ofQ, { checkUrl: checks.url('/q'), checkAfterMs: 200 })).statusCode).toBe(201);
    expect((await prepare(asP, ofP, { checkUrl: checks.url('/p'), checkAfterMs: 200 })).statusCode).toBe(201);
    const callOf = (id: string) => checks.hits.find((h) => h.headers['herald-message-id'] === id);
    const [q, p] = (await waitFor(() => (callOf(ofQ) && callOf(ofP) ? [callOf(ofQ)!, callOf(ofP)!] : undefined), 'both check calls')) as [Hit, Hit];
    expect(q.headers['herald-tenant']).toBe('team-q');
    expect(new Webhook(Q_CHECK_SECRET).verify(q.body, q.headers as Record<string, string>)).toMatchObject({ id: ofQ });
    expect(() => new Webhook(TEST_CHECK_SECRET).verify(q.body, q.headers as Record<string, string>)).toThrow();
    expect(new Webhook(TEST_CHECK_SECRET).verify(p.body, p.headers as Record<string, string>)).toMatchObject({ id: ofP });
    expect(() => new Webhook(Q_CHECK_SECRET).verify(p.body, p.headers as Record<string, string>)).toThrow();
  });
});

describe('the keys file', () => {
  const works = async (headers: Record<string, string>) => (await app.inject({ url: '/v1/messages?limit=1', headers })).statusCode;

  it('keeps the last good keys when the file is broken, letting nobody new in', async () => {
    expect(await works(asSpare)).toBe(200);
    const newcomer = 'newcomer-token-00000000000000000';
    // Not JSON, then JSON with a bad entry beside a new key: neither is taken.
    await writeKeysInPlace(`${keysText([...BASE_KEYS, SPARE_KEY]).slice(0, -3)}`);
    await new Promise((r) => setTimeout(r, 4_500));
    expect(await works(asSpare)).toBe(200);
    expect(await works(asP)).toBe(200);
    await writeKeysInPlace(keysText([...BASE_KEYS, { name: 'new', role: 'producer', tenant: 'team-n', token: newcomer }, { name: 'bad', role: 'root', token: 'x' }]));
    await new Promise((r) => setTimeout(r, 4_500));
    expect(await works({ authorization: `Bearer ${newcomer}` })).toBe(401);
    expect(await works(asSpare)).toBe(200);
    await writeKeysInPlace(keysText([...BASE_KEYS, SPARE_KEY]));
  }, 20_000);

  it('stops accepting a key removed by rewriting the file in place within 10 s, without a restart', async () => {
    expect(await works(asSpare)).toBe(200);
    const removedAt = Date.now();
    await writeKeysInPlace(keysText(BASE_KEYS));
    await waitFor(async () => (await works(asSpare)) === 401, 'the removed key refused', 10_000);
    expect(Date.now() - removedAt).toBeLessThan(10_000);
    expect(await works(asP)).toBe(200);
  }, 20_000);

  it('takes a key added and then removed by swapping the mounted directory (rename), within 10 s each', async () => {
    await swapKeys(keysText([...BASE_KEYS, SPARE_KEY]));
    await waitFor(async () => (await works(asSpare)) === 200, 'the added key accepted', 10_000);
    const removedAt = Date.now();
    await swapKeys(keysText(BASE_KEYS));
    await waitFor(async () => (await works(asSpare)) === 401, 'the removed key refused', 10_000);
    expect(Date.now() - removedAt).toBeLessThan(10_000);
    expect(await works(asViewer)).toBe(200);
  }, 30_000);
});
