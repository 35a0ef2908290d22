import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Liveness, Readiness } from '@herald/contract';

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
    // Unauthenticated callers see only that it failed; the details (hosts, ports) go to the log.
    const message = (error as Error).message ?? '';
    return { ok: false, latencyMs: round(performance.now() - started), error: message.startsWith('no answer within') ? 'timeout' : 'unreachable', detail: message };
  } finally {
    clearTimeout(timer);
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;

export const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const open = { access: 'public' as const };

  app.get('/healthz', {
    config: open,
    schema: { operationId: 'liveness', summary: 'Liveness: the process is up', tags: ['operations'], response: { 200: Liveness } },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    config: open,
    schema: {
      operationId: 'readiness',
      summary: 'Readiness: MySQL and Redis answer',
      description: 'Each backing service is probed with a 1 s timeout. 503 while any fails or while the process shuts down.',
      tags: ['operations'],
      response: { 200: Readiness, 503: Readiness },
    },
  }, async (_request, reply) => {
    const [mysql, redis] = await Promise.all([probe(() => app.mysql.query('SELECT 1')), probe(() => app.redis.ping())]);
    const ready = mysql.ok && redis.ok;
    for (const [name, check] of Object.entries({ mysql, redis })) if (!check.ok) app.log.warn({ check: name, detail: check.detail }, 'readiness check failed');
    const strip = ({ detail: _d, ...check }: Awaited<ReturnType<typeof probe>>) => check;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', checks: { mysql: strip(mysql), redis: strip(redis) } });
  });

  app.get('/metrics', {
    config: open,
    schema: {
      operationId: 'metrics',
      summary: 'Prometheus metrics',
      tags: ['operations'],
      produces: ['text/plain'],
      response: { 200: { type: 'string', description: 'Prometheus text exposition format' } },
    },
  }, async (_request, reply) => {
    reply.type(app.metrics.registry.contentType);
    return app.metrics.registry.metrics();
  });
};
