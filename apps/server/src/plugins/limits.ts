import { createHash } from 'node:crypto';
import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import { HttpProblem } from './errors';

export interface LimitsOptions {
  /** Requests per minute per bearer token (per client address without one); 0 turns it off. */
  ratePerMinute: number;
  /** Shed load (503) when the event loop lags more than this; 0 turns it off. */
  maxEventLoopDelayMs: number;
  sampleIntervalMs: number;
  redisUrl: string;
  redisPrefix: string;
}

/**
 * Abuse and overload limits. The rate limit is counted in Redis, so it holds across replicas;
 * if Redis is unreachable it is skipped rather than turning a Redis outage into refused
 * confirms. Under overload the API answers 503 with Retry-After at once instead of letting
 * every request time out; probes and metrics (public routes) keep answering.
 */
export const limitsPlugin = fp<LimitsOptions>(
  async (app, options) => {
    if (options.ratePerMinute > 0) {
      // A client of its own that fails at once while Redis is down (no offline queue): the limit
      // is then skipped without adding a reconnect wait to every request.
      const redis = new Redis(options.redisUrl, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
      redis.on('error', () => undefined); // readiness reports Redis
      // Start with the limit armed when Redis is there; never hold start-up for more than 1 s.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([redis.connect().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, 1_000)))]);
      clearTimeout(timer);
      app.addHook('onClose', async () => {
        redis.disconnect();
      });
      await app.register(rateLimit, {
        global: true,
        max: options.ratePerMinute,
        timeWindow: 60_000,
        redis,
        nameSpace: `${options.redisPrefix}:ratelimit:`,
        skipOnError: true,
        // The token's digest, never the token, names the bucket.
        keyGenerator: (request) => {
          const token = /^Bearer[ ]+(\S+)/i.exec(request.headers.authorization ?? '')?.[1];
          return token ? `t:${createHash('sha256').update(token).digest('hex').slice(0, 32)}` : `ip:${request.ip}`;
        },
        allowList: (request) => request.routeOptions.config.access === 'public',
        errorResponseBuilder: (_request, context) =>
          new HttpProblem(429, `rate limit of ${context.max} requests per minute for this token exceeded; retry in ${context.after}`),
      });
    }
    if (options.maxEventLoopDelayMs > 0) {
      await app.register(underPressure, {
        maxEventLoopDelay: options.maxEventLoopDelayMs,
        sampleInterval: options.sampleIntervalMs,
        // Rejecting hands the request to Herald's error handler (its error shape); resolving lets it through.
        pressureHandler: async (request, reply, type) => {
          if (request.routeOptions.config.access === 'public') return;
          void reply.header('retry-after', '1');
          throw new HttpProblem(503, `overloaded (${type}); nothing was done, retry shortly`);
        },
      });
    }
  },
  { name: 'herald-limits', dependencies: ['herald-redis'] },
);
