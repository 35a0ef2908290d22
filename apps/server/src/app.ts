import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { LeaseSlots } from '@herald/db';
import type { Config } from './config';
import { KeyRing } from './keys';
import { authPlugin } from './plugins/auth';
import { consoleAssets, consolePlugin } from './plugins/console';
import { installDrain } from './plugins/drain';
import { limitsPlugin } from './plugins/limits';
import { installRequestLogBindings } from './plugins/logging';
import { installErrorHandling, installJsonParser } from './plugins/errors';
import { metricsPlugin } from './plugins/metrics';
import { mysqlPlugin } from './plugins/mysql';
import { queuesPlugin } from './plugins/queues';
import { redisPlugin } from './plugins/redis';
import { swaggerPlugin } from './plugins/swagger';
import { tracingPlugin } from './plugins/tracing';
import { installValidators } from './plugins/validation';
import { workerPlugin } from './plugins/worker';
import { consoleRoutes } from './routes/console.routes';
import { healthRoutes } from './routes/health.routes';
import { messageRoutes } from './routes/messages.routes';
import { statsRoutes } from './routes/stats.routes';
import { retentionOf } from './plugins/purge';
import { subscriptionRoutes } from './routes/subscriptions.routes';

export interface BuildOptions {
  /** pino options, or false for no logs (tests). */
  logger?: boolean | Record<string, unknown>;
  /** false: never start the delivery worker (writing openapi.yaml, API-only tests). */
  worker?: boolean;
  /** The built console's directory; default: dist/apps/console beside the server (tests build their own). */
  consoleDir?: string;
}

/** Builds the Herald app: config, then infrastructure plugins, then routes. Opens no connection. */
export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger === undefined ? loggerOptions(config) : options.logger,
    bodyLimit: config.maxBodyBytes,
    // A body trickled in a byte at a time must not hold a connection for ever: Node answers 408
    // (through clientErrorHandler) and closes it. It checks every connectionsCheckingInterval.
    requestTimeout: config.requestTimeoutMs,
    http: {
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(config.requestTimeoutMs, 60_000),
      connectionsCheckingInterval: Math.min(config.requestTimeoutMs, 1_000),
    },
    clientErrorHandler: answerClientError(config.requestTimeoutMs),
    // Ids are up to 128 characters; Fastify's default of 100 would turn long ids into 404s.
    routerOptions: { maxParamLength: 256, ignoreTrailingSlash: false },
    return503OnClosing: true,
    // Requests Fastify refuses before routing (a malformed %-escape in the path, say) get
    // Herald's error shape too.
    frameworkErrors: (error, _request, reply) => {
      const statusCode = error.statusCode && error.statusCode < 500 ? error.statusCode : 400;
      void (reply as unknown as FastifyReply)
        .code(statusCode)
        .header('content-type', 'application/json; charset=utf-8')
        .send(JSON.stringify({ statusCode, error: STATUS_CODES[statusCode] ?? 'Bad Request', message: error.message }) as never);
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  installValidators(app);
  installJsonParser(app);
  installErrorHandling(app, config.maxBodyBytes);
  installDrain(app);
  installRequestLogBindings(app);

  // A process that sends runs deliveries in these slots: confirms lease into them as they commit.
  const sends = config.role !== 'api' && options.worker !== false;
  const slots = sends ? new LeaseSlots(config.delivery.inlineLimit, { webhookTimeoutMs: config.delivery.webhookTimeoutMs, amqpConfirmTimeoutMs: config.delivery.amqpConfirmTimeoutMs }) : undefined;

  await app.register(metricsPlugin);
  await app.register(tracingPlugin, { config: config.tracing });
  await app.register(mysqlPlugin, { url: config.databaseUrl, poolSize: config.dbPoolSize, checkDefaults: config.checkDefaults, checkIntervalCapMs: config.checks.intervalCapMs, slots });
  await app.register(redisPlugin, { url: config.redisUrl });
  await app.register(queuesPlugin, { config, slots });
  await app.register(limitsPlugin, { ...config.limits, redisUrl: config.redisUrl, redisPrefix: config.queuePrefix });
  // The keys file is read before anything listens: a process does not start without its keys.
  const keys = new KeyRing(config.apiKeys, config.apiKeysFile, app.log);
  await keys.start();
  app.metrics.tenants.prepare(keys.tenants());
  app.addHook('onClose', () => keys.stop());
  await app.register(authPlugin, { keys, disabled: config.authDisabled });
  await app.register(swaggerPlugin);

  await app.register(healthRoutes);
  if (config.role !== 'worker') {
    await app.register(messageRoutes, { allowPrivateUrls: config.allowPrivateUrls });
    await app.register(subscriptionRoutes, { allowPrivateUrls: config.allowPrivateUrls, maxPerTopic: config.maxSubscriptionsPerTopic });
    await app.register(consoleRoutes);
    await app.register(consolePlugin, { root: options.consoleDir ?? consoleAssets() });
    await app.register(statsRoutes, { retention: retentionOf(config) });
  }
  if (sends) await app.register(workerPlugin, { config, checkSecretFor: (tenant: string) => keys.checkSecretFor(tenant) });
  return app;
}

/**
 * Answers what Node refuses before Fastify sees a request (a body too slow, headers too large) in
 * Herald's error shape, then closes the connection. The socket is ended rather than destroyed:
 * destroying it with the client's bytes still unread sends a reset, and the client would see
 * ECONNRESET instead of the answer.
 */
function answerClientError(requestTimeoutMs: number) {
  const answered = new WeakSet<Socket>();
  return function (this: FastifyInstance, error: Error & { code?: string }, socket: Socket): void {
    // The parser reports its error again for every later chunk: answer once.
    if (error.code === 'ECONNRESET' || socket.destroyed || answered.has(socket)) return;
    answered.add(socket);
    const [statusCode, message] =
      error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, `the request did not arrive in full within ${requestTimeoutMs} ms (HERALD_REQUEST_TIMEOUT_MS)`]
      : error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'request headers are larger than the server accepts']
      : [400, 'malformed HTTP request'];
    if (socket.writable) {
      const body = JSON.stringify({ statusCode, error: STATUS_CODES[statusCode], message });
      socket.end(`HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
    // Whatever else the client sends is read and dropped until it closes, at most a few seconds.
    socket.resume();
    setTimeout(() => socket.destroy(), 5_000).unref();
  };
}

export function loggerOptions(config: Config) {
  return {
    level: config.logLevel,
    // Defence in depth: Herald never logs headers, but if a serializer ever does, no token leaks.
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.token'], censor: '[redacted]' },
  };
}
