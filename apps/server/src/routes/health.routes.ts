import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ErrorResponse, Liveness, Readiness } from '@herald/contract';
import { Type } from '@sinclair/typebox';
import { HERALD_VERSION } from '../version';

const PROBE_TIMEOUT_MS = 1_000;

async function probe(check: () => Promise<unknown>): Promise<{ ok: boolean; latencyMs: number; error?: string; detail?: string }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
      }),
    ]);
    return { ok: true, latencyMs: round(performance.now() - started) };
  } catch (error) {
    const message = (error as Error).message ?? '';
    return { ok: false, latencyMs: round(performance.now() - started), error: message.startsWith('no answer within') ? 'timeout' : 'unreachable', detail: message };
  } finally {
    clearTimeout(timer);
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/** Fastify answers every request 503 once the process has begun shutting down. */
const ShuttingDown = { ...Type.Ref(ErrorResponse), description: 'The process is shutting down' };

export const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const open = { access: 'public' as const };

  app.get('/healthz', {
    config: open,
    schema: { operationId: 'liveness', summary: 'Liveness: the process is up', tags: ['operations'], response: { 200: Liveness, 503: ShuttingDown } },
  }, async () => ({ status: 'ok' as const, version: HERALD_VERSION }));

  app.get('/readyz', {
    config: open,
    schema: {
      operationId: 'readiness',
      summary: 'Readiness: MySQL, Redis and (when used) RabbitMQ answer',
      description: 'Each backing service is probed with a 1 s timeout; RabbitMQ only in a process that delivers and only while an enabled subscription targets it. 503 with the readiness body while any fails; 503 with the error body while the process shuts down.',
      tags: ['operations'],
      // Fastify answers requests that arrive while the process shuts down itself, before any route
      // runs, in the error shape: both shapes are documented rather than one that is sometimes wrong.
      response: { 200: Readiness, 503: Type.Union([Readiness, Type.Ref(ErrorResponse)], { description: 'A backing service failed (Readiness), or the process is shutting down (error shape)' }) },
    },
  }, async (_request, reply) => {
    const rabbitPing = app.rabbitPing;
    const usesRabbit = rabbitPing ? await app.subscriptions.usesRabbitMq().catch(() => false) : false;
    const probes: Record<string, Promise<Awaited<ReturnType<typeof probe>>>> = {
      mysql: probe(() => app.mysql.query('SELECT 1')),
      redis: probe(() => app.redis.ping()),
      ...(rabbitPing && usesRabbit && { rabbitmq: probe(rabbitPing) }),
    };
    const checks: Record<string, { ok: boolean; latencyMs: number; error?: string }> = {};
    for (const [name, pending] of Object.entries(probes)) {
      const { detail, ...check } = await pending;
      // Unauthenticated callers see only that it failed; the details (hosts, ports) go to the log.
      if (!check.ok) app.log.warn({ check: name, detail }, 'readiness check failed');
      checks[name] = check;
    }
    const ready = Object.values(checks).every((c) => c.ok);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', checks });
  });

  app.get('/metrics', {
    config: open,
    schema: {
      operationId: 'metrics',
      summary: 'Prometheus metrics',
      tags: ['operations'],
      produces: ['text/plain'],
      response: {
        200: { type: 'string', description: 'Prometheus text exposition format' },
        503: { description: ShuttingDown.description, content: { 'application/json': { schema: Type.Ref(ErrorResponse) } } },
      },
    },
  }, async (_request, reply) => {
    reply.type(app.metrics.registry.contentType);
    return app.metrics.registry.metrics();
  });
};
