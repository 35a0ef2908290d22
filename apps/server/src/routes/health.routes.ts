import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ErrorResponse, errorResponse, Errors, Liveness, Readiness } from '@herald/contract';
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
const ShuttingDown = errorResponse('The process is shutting down', { statusCode: 503, error: 'Service Unavailable', message: 'Service Unavailable' });
// Public: no bearer token (an empty list says so; leaving security out would say nothing).
const open = { security: [], tags: ['operations'] };

export const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const config = { access: 'public' as const };

  app.get('/healthz', {
    config,
    schema: { ...open, operationId: 'liveness', summary: 'Liveness: the process is up', response: { 200: Liveness, 431: Errors[431], 503: ShuttingDown } },
  }, async () => ({ status: 'ok' as const, version: HERALD_VERSION }));

  app.get('/readyz', {
    config,
    schema: {
      ...open,
      operationId: 'readiness',
      summary: 'Readiness: MySQL, Redis and (when used) RabbitMQ answer',
      description: 'Each backing service is probed with a 1 s timeout; RabbitMQ only in a process that delivers and only while an enabled subscription targets it. 503 with the readiness body while any fails; 503 with the error body while the process shuts down.',
      // Fastify answers requests that arrive while the process shuts down itself, before any route
      // runs, in the error shape: both shapes are documented rather than one that is sometimes wrong.
      response: {
        200: Readiness,
        431: Errors[431],
        503: {
          description: 'A backing service failed (Readiness), or the process is shutting down (error shape)',
          content: {
            'application/json': {
              schema: Type.Union([Readiness, Type.Ref(ErrorResponse)]),
              example: { status: 'unavailable', checks: { mysql: { ok: false, latencyMs: 1000, error: 'timeout' }, redis: { ok: true, latencyMs: 0.4 } } },
            },
          },
        },
      },
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
    config,
    schema: {
      ...open,
      operationId: 'metrics',
      summary: 'Prometheus metrics',
      produces: ['text/plain'],
      response: {
        200: { type: 'string', description: 'Prometheus text exposition format' },
        431: Errors[431],
        503: ShuttingDown,
      },
    },
  }, async (_request, reply) => {
    reply.type(app.metrics.registry.contentType);
    return app.metrics.registry.metrics();
  });
};
