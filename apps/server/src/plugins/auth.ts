import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { DEFAULT_TENANT } from '@herald/domain';
import { tokenDigest, type Caller, type KeyRing } from '../keys';
import { HttpProblem } from './errors';

/**
 * Who may call a route: nobody needs a token for `public`; `producer` routes take producer keys
 * too; admins may call every route, viewers every GET. Routes without `config.access` are admin-only.
 */
export type Access = 'public' | 'producer' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
  interface FastifyRequest {
    caller?: Caller;
    /** The SHA-256 of the bearer token that named `caller`, computed once per request (the rate limit reuses it). */
    tokenDigest?: Buffer;
    /** Why the caller may not use the route; answered once the rate limit has counted the request. */
    refusal?: HttpProblem;
  }
}

export interface AuthOptions {
  keys: KeyRing;
  disabled: boolean;
}

const isPublicAsset = (url: string) => url === '/docs' || url.startsWith('/docs/') || url === '/console' || url.startsWith('/console/');

const READS = new Set(['GET', 'HEAD']);

/**
 * Bearer-token auth, checked in `onRequest` and refused in `preParsing`, before the body is read.
 * The gap between them is for the rate limit (a route-level `onRequest` hook, so it runs after
 * this one): it counts a request by its caller, and one without a valid token by its address.
 * Tokens are compared as SHA-256 digests with timingSafeEqual against every key, so neither a
 * token's length nor which key matched shows in the timing. Tokens are never logged.
 */
export const authPlugin = fp<AuthOptions>(
  async (app, options) => {
    if (options.disabled) app.log.warn('authentication is DISABLED (HERALD_INSECURE_NO_AUTH=true): every caller is admin; never run this in production');

    app.addHook('onRequest', async (request: FastifyRequest) => {
      // Closed by default: a route that forgets to say who may call it is admin-only. Unknown
      // routes (404), the Swagger UI and the console's static assets are public.
      const url = request.routeOptions.url;
      const access = request.routeOptions.config.access ?? (url === undefined || isPublicAsset(url) ? 'public' : 'admin');
      if (access === 'public') return;
      if (options.disabled) {
        request.caller = { name: 'anonymous', role: 'admin', tenant: DEFAULT_TENANT };
        return;
      }
      const header = request.headers.authorization;
      const match = header ? /^Bearer[ ]+(\S+)\s*$/i.exec(header) : null;
      if (!match?.[1]) {
        request.refusal = new HttpProblem(401, 'missing bearer token: send Authorization: Bearer <token>');
        return;
      }
      const presented = tokenDigest(match[1]);
      const found = options.keys.matchDigest(presented);
      if (!found) {
        request.refusal = new HttpProblem(401, 'unknown bearer token');
        return;
      }
      request.caller = found;
      request.tokenDigest = presented;
      if (found.role === 'viewer' && !READS.has(request.method)) request.refusal = new HttpProblem(403, 'the viewer role may only read (GET); this route writes');
      else if (found.role === 'producer' && access !== 'producer') request.refusal = new HttpProblem(403, 'the producer role may not use this route; it needs admin');
    });

    app.addHook('preParsing', async (request) => {
      if (request.refusal) throw request.refusal;
    });
  },
  { name: 'herald-auth' },
);
