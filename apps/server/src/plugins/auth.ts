import { createHash, timingSafeEqual } from 'node:crypto';
import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import type { ApiKey, Role } from '../config';
import { HttpProblem } from './errors';

/**
 * Who may call a route: nobody needs a token for `public`; `admin` may do everything `producer`
 * may. Routes without `config.access` are admin-only.
 */
export type Access = 'public' | Role;

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
  interface FastifyRequest {
    caller?: { name: string; role: Role };
    /** Why the caller may not use the route; answered once the rate limit has counted the request. */
    refusal?: HttpProblem;
  }
}

export interface AuthOptions {
  keys: ApiKey[];
  disabled: boolean;
}

const isPublicAsset = (url: string) => url === '/docs' || url.startsWith('/docs/') || url === '/console' || url.startsWith('/console/');

const digest = (token: string) => createHash('sha256').update(token).digest();

/**
 * Bearer-token auth, checked in `onRequest` and refused in `preParsing`, before the body is read.
 * The gap between them is for the rate limit (a route-level `onRequest` hook, so it runs after
 * this one): it counts a request by its caller, and one without a valid token by its address.
 * Tokens are compared as SHA-256 digests with timingSafeEqual against every key, so neither a
 * token's length nor which key matched shows in the timing. Tokens are never logged.
 */
export const authPlugin = fp<AuthOptions>(
  async (app, options) => {
    const keys = options.keys.map((k) => ({ name: k.name, role: k.role, digest: digest(k.token) }));
    if (options.disabled) app.log.warn('authentication is DISABLED (HERALD_INSECURE_NO_AUTH=true): every caller is admin; never run this in production');

    app.addHook('onRequest', async (request: FastifyRequest) => {
      // Closed by default: a route that forgets to say who may call it is admin-only. Unknown
      // routes (404), the Swagger UI and the console's static assets are public.
      const url = request.routeOptions.url;
      const access = request.routeOptions.config.access ?? (url === undefined || isPublicAsset(url) ? 'public' : 'admin');
      if (access === 'public') return;
      if (options.disabled) {
        request.caller = { name: 'anonymous', role: 'admin' };
        return;
      }
      const header = request.headers.authorization;
      const match = header ? /^Bearer[ ]+(\S+)\s*$/i.exec(header) : null;
      if (!match?.[1]) {
        request.refusal = new HttpProblem(401, 'missing bearer token: send Authorization: Bearer <token>');
        return;
      }
      const presented = digest(match[1]);
      let found: (typeof keys)[number] | undefined;
      for (const key of keys) if (timingSafeEqual(presented, key.digest)) found = key;
      if (!found) {
        request.refusal = new HttpProblem(401, 'unknown bearer token');
        return;
      }
      request.caller = { name: found.name, role: found.role };
      if (access === 'admin' && found.role !== 'admin') request.refusal = new HttpProblem(403, `the ${found.role} role may not use this route; it needs admin`);
    });

    app.addHook('preParsing', async (request) => {
      if (request.refusal) throw request.refusal;
    });
  },
  { name: 'herald-auth' },
);
