import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import { HttpProblem } from './errors';

export interface LimitsOptions {
  /** Requests per minute per bearer token; 0 turns it off. */
  ratePerMinute: number;
  /** Requests per minute per client address without a valid token (each answered 401); 0 turns it off. */
  unauthenticatedPerMinute: number;
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
    if (options.ratePerMinute > 0 || options.unauthenticatedPerMinute > 0) {
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
      // Runs after the auth hook (route-level hooks follow app-level ones): a caller is known by
      // then. Without a valid token the request is counted against its address, on a budget of
      // its own, so guessing tokens (a new one each time) is limited too.
      const unauthenticated = (key: string) => key.startsWith('ip:');
      await app.register(rateLimit, {
        global: true,
        max: (_request, key) => (unauthenticated(key) ? options.unauthenticatedPerMinute : options.ratePerMinute),
        timeWindow: 60_000,
        redis,
        nameSpace: `${options.redisPrefix}:ratelimit:`,
        skipOnError: true,
        // The token's digest, never the token, names the bucket.
        keyGenerator: (request) => {
          if (!request.caller) return `ip:${request.ip}`;
          // The digest the auth hook made of the token (none when authentication is off).
          return request.tokenDigest ? `t:${request.tokenDigest.toString('hex', 0, 16)}` : `anon:${request.ip}`;
        },
        allowList: (request, key) =>
          request.routeOptions.config.access === 'public' || (unauthenticated(key) ? options.unauthenticatedPerMinute : options.ratePerMinute) === 0,
        errorResponseBuilder: (request, context) =>
          new HttpProblem(
            429,
            request.caller
              ? `rate limit of ${context.max} requests per minute for this token exceeded; retry in ${context.after}`
              : `rate limit of ${context.max} requests per minute without a valid token from this address exceeded; retry in ${context.after}`,
          ),
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
