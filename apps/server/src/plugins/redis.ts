import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import { outageLog } from './outage-log';

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis;
  }
}

/** Redis for scheduling. Lazy: building the app (e.g. to write openapi.yaml) connects nowhere. */
export const redisPlugin = fp<{ url: string }>(
  async (app, options) => {
    const redis = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
    // ioredis reconnects by itself; say so once per outage (and then now and then), not on every retry.
    const outage = outageLog(app.log, 'redis connection error');
    redis.on('error', (err) => outage.failed(err));
    redis.on('ready', () => outage.recovered());
    app.decorate('redis', redis);
    app.addHook('onClose', async () => {
      if (redis.status === 'wait' || redis.status === 'end') redis.disconnect();
      else await redis.quit().catch(() => redis.disconnect());
    });
  },
  { name: 'herald-redis' },
);
