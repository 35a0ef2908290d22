import fp from 'fastify-plugin';
import { Redis } from 'ioredis';

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis;
  }
}

/** Redis for scheduling. Lazy: building the app (e.g. to write openapi.yaml) connects nowhere. */
export const redisPlugin = fp<{ url: string }>(
  async (app, options) => {
    const redis = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
    let lastLogged = 0;
    redis.on('error', (err) => {
      // ioredis reconnects by itself; say so at most every 10 s instead of on every retry.
      if (Date.now() - lastLogged > 10_000) {
        lastLogged = Date.now();
        app.log.warn({ err: { message: err.message } }, 'redis connection error');
      }
    });
    app.decorate('redis', redis);
    app.addHook('onClose', async () => {
      if (redis.status === 'wait' || redis.status === 'end') redis.disconnect();
      else await redis.quit().catch(() => redis.disconnect());
    });
  },
  { name: 'herald-redis' },
);
