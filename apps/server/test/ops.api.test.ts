import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { renderOpenApiYaml } from '../src/openapi';
import { asAdmin, asProducer, buildTestApp, createTestDatabase, metricValue, prepareBody } from './helpers';

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase('ops');
  app = await buildTestApp(db.url);
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

// A port nothing listens on: connections are refused at once.
const CLOSED = '127.0.0.1:9';

describe('health and readiness', () => {
  it('/healthz answers without a token', async () => {
    const res = await app.inject({ url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok' });
  });

  it('/readyz is ready when MySQL and Redis answer', async () => {
    const res = await app.inject({ url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ready', checks: { mysql: { ok: true }, redis: { ok: true } } });
  });

  it('/readyz checks RabbitMQ only while a subscription uses it, and says when it is down', async () => {
    const noRabbit = await buildTestApp(db.url, { AMQP_URL: `amqp://guest:guest@${CLOSED}` });
    try {
      expect((await noRabbit.inject({ url: '/readyz' })).json().checks.rabbitmq).toBeUndefined();
      const sub = await noRabbit.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'r', topic: 'ready.check', target: { type: 'rabbitmq', exchange: 'x' } } });
      expect(sub.statusCode, sub.body).toBe(201);
      const down = await noRabbit.inject({ url: '/readyz' });
      expect(down.statusCode).toBe(503);
      expect(down.json().checks.rabbitmq).toMatchObject({ ok: false, error: 'unreachable' });
      expect(down.body).not.toContain('127.0.0.1');
      await noRabbit.inject({ method: 'DELETE', url: `/v1/subscriptions/${sub.json().id}`, headers: asAdmin });
      expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
    } finally {
      await noRabbit.close();
    }
  });

  it('/readyz answers 503 naming the service that is down', async () => {
    const noRedis = await buildTestApp(db.url, { REDIS_URL: `redis://${CLOSED}` });
    const noMysql = await buildTestApp(`mysql://root@${CLOSED}/herald`);
    try {
      const redisDown = await noRedis.inject({ url: '/readyz' });
      expect(redisDown.statusCode).toBe(503);
      expect(redisDown.json()).toMatchObject({ status: 'unavailable', checks: { mysql: { ok: true }, redis: { ok: false } } });
      const mysqlDown = await noMysql.inject({ url: '/readyz' });
      expect(mysqlDown.statusCode).toBe(503);
      expect(mysqlDown.json().checks.mysql).toMatchObject({ ok: false });
    } finally {
      await noRedis.close();
      await noMysql.close();
    }
  });
});

describe('backing services down', () => {
  it('answers 503 promptly, never 201, to a prepare and a confirm while MySQL is unreachable', async () => {
    const down = await buildTestApp(`mysql://root@${CLOSED}/herald`);
    try {
      const started = Date.now();
      const res = await down.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('while-down') });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.json().message).toBe('a backing service is unavailable; retry the request (Herald’s writes are idempotent)');
      expect(Date.now() - started).toBeLessThan(6_000);
      const confirm = await down.inject({ method: 'POST', url: '/v1/messages/x/confirm', headers: asProducer });
      expect(confirm.statusCode).toBe(503);
    } finally {
      await down.close();
    }
  });
});

describe('errors', () => {
  it('never leaks internals in a 500', async () => {
    const { buildApp } = await import('../src/app');
    const { parseConfig } = await import('../src/config');
    const { testEnv } = await import('./helpers');
    const broken = await buildApp(parseConfig(testEnv(db.url)), { logger: false });
    broken.get('/v1/broken', { config: { access: 'public' } }, async () => {
      throw new Error('secret internal detail at /srv/herald/x.ts:12');
    });
    await broken.ready();
    try {
      const res = await broken.inject({ url: '/v1/broken' });
      expect(res.statusCode).toBe(500);
      expect(res.body).not.toContain('secret');
      expect(res.json()).toMatchObject({ statusCode: 500, error: 'Internal Server Error' });
      expect(res.json().message).toMatch(/^internal error; it was logged with request id /);
    } finally {
      await broken.close();
    }
  });
});

describe('metrics', () => {
  it('counts requests by route and status, and message transitions', async () => {
    await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('m-1') });
    await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('m-2') });
    await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('m-2') });
    await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id: 'm-3', topic: 't', payload: 1, confirm: true } });
    await app.inject({ method: 'POST', url: '/v1/messages/m-1/confirm', headers: asProducer });
    await app.inject({ method: 'POST', url: '/v1/messages/m-1/confirm', headers: asProducer });
    await app.inject({ method: 'POST', url: '/v1/messages/m-2/cancel', headers: asProducer });
    await app.inject({ method: 'POST', url: '/v1/messages/m-2/confirm', headers: asProducer });

    const res = await app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const text = res.body;
    const value = (series: string) => metricValue(text, series);
    expect(value('herald_message_transitions_total{from="new",to="prepared"}')).toBe(2);
    expect(value('herald_message_transitions_total{from="new",to="confirmed"}')).toBe(1);
    expect(value('herald_message_transitions_total{from="prepared",to="confirmed"}')).toBe(1);
    expect(value('herald_message_transitions_total{from="prepared",to="cancelled"}')).toBe(1);
    expect(value('herald_http_requests_total{method="POST",route="/v1/messages",status_code="201"}')).toBe(3);
    expect(value('herald_http_requests_total{method="POST",route="/v1/messages",status_code="200"}')).toBe(1);
    expect(value('herald_http_requests_total{method="POST",route="/v1/messages/:id/confirm",status_code="409"}')).toBe(1);
    expect(value('herald_http_request_duration_seconds_count{method="POST",route="/v1/messages/:id/confirm"}')).toBe(3);
    expect(text).toContain('process_resident_memory_bytes');
  });
});

describe('Swagger UI and the OpenAPI document', () => {
  it('serves Swagger UI at /docs and the spec at /docs/json', async () => {
    const ui = await app.inject({ url: '/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.body).toContain('swagger');
    const spec = (await app.inject({ url: '/docs/json' })).json();
    expect(spec.openapi).toBe('3.1.0');
    expect(Object.keys(spec.paths).sort()).toEqual([
      '/healthz', '/metrics', '/readyz', '/v1/audit', '/v1/me', '/v1/messages', '/v1/messages/{id}', '/v1/messages/{id}/cancel', '/v1/messages/{id}/confirm',
      '/v1/messages/{id}/deliveries', '/v1/messages/{id}/redeliver',
      '/v1/stats', '/v1/stats/rates', '/v1/stats/subscriptions', '/v1/subscriptions', '/v1/subscriptions/{id}', '/v1/subscriptions/{id}/blocked-keys', '/v1/subscriptions/{id}/blocked-keys/skip',
      '/v1/subscriptions/{id}/dead-deliveries/count', '/v1/subscriptions/{id}/redeliver', '/v1/subscriptions/{id}/rotate-secret',
    ]);
  });

  it('documents both 503 bodies of /readyz: readiness while a service fails, the error shape Fastify answers while shutting down', async () => {
    const spec = (await app.inject({ url: '/docs/json' })).json();
    const schema = spec.paths['/readyz'].get.responses['503'].content['application/json'].schema;
    expect(schema.anyOf).toEqual([expect.objectContaining({ required: ['status', 'checks'] }), { $ref: '#/components/schemas/ErrorResponse' }]);
    // Fastify's shutdown answer (return503OnClosing) carries statusCode, error and message.
    expect(spec.components.schemas.ErrorResponse.required).toEqual(expect.arrayContaining(['statusCode', 'error', 'message']));
  });

  it('documents every route with a summary, tags, and its error responses', async () => {
    const spec = (await app.inject({ url: '/docs/json' })).json();
    for (const [path, methods] of Object.entries<Record<string, { summary?: string; operationId?: string; tags?: string[]; responses: Record<string, unknown>; security?: unknown }>>(spec.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        expect(op.summary, `${method} ${path}`).toBeTruthy();
        expect(op.operationId, `${method} ${path}`).toMatch(/^[a-z][A-Za-z]+$/);
        expect(op.tags?.length, `${method} ${path}`).toBeGreaterThan(0);
        if (path.startsWith('/v1/')) {
          expect(Object.keys(op.responses), `${method} ${path}`).toEqual(expect.arrayContaining(['400', '401', '403', '503']));
          expect(op.security).toEqual([{ bearer: [] }]);
        }
      }
    }
    expect(spec.paths['/v1/messages'].post.requestBody.content['application/json'].example).toMatchObject({ topic: 'order.paid' });
  });

  it('openapi.yaml at the repository root is exactly the served spec (run `npm run openapi` after changing a route)', async () => {
    const committed = await readFile(new URL('../../../openapi.yaml', import.meta.url), 'utf8');
    expect(committed).toBe(await renderOpenApiYaml());
    const served = await app.inject({ url: '/docs/yaml' });
    expect(served.body).toBe(committed);
  });
});
