import { STATUS_CODES } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { LeaseSlots } from '@herald/db';
import type { Config } from './config';
import { KeyRing } from './keys';
import { authPlugin } from './plugins/auth';
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
import { healthRoutes } from './routes/health.routes';
import { messageRoutes } from './routes/messages.routes';
import { subscriptionRoutes } from './routes/subscriptions.routes';

export interface BuildOptions {
  /** pino options, or false for no logs (tests). */
  logger?: boolean | Record<string, unknown>;
  /** false: never start the delivery worker (writing openapi.yaml, API-only tests). */
  worker?: boolean;
}

/** Builds the Herald app: config, then infrastructure plugins, then routes. Opens no connection. */
export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger === undefined ? loggerOptions(config) : options.logger,
    bodyLimit: config.maxBodyBytes,
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
  app.addHook('onClose', () => keys.stop());
  await app.register(authPlugin, { keys, disabled: config.authDisabled });
  await app.register(swaggerPlugin);

  await app.register(healthRoutes);
  if (config.role !== 'worker') {
    await app.register(messageRoutes, { allowPrivateUrls: config.allowPrivateUrls });
    await app.register(subscriptionRoutes, { allowPrivateUrls: config.allowPrivateUrls, maxPerTopic: config.maxSubscriptionsPerTopic });
  }
  if (sends) await app.register(workerPlugin, { config, checkSecretFor: (tenant: string) => keys.checkSecretFor(tenant) });
  return app;
}

export function loggerOptions(config: Config) {
  return {
    level: config.logLevel,
    // Defence in depth: Herald never logs headers, but if a serializer ever does, no token leaks.
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.token'], censor: '[redacted]' },
  };
}
