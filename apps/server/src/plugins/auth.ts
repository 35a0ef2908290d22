import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { DEFAULT_TENANT } from '@herald/domain';
import type { Caller, KeyRing } from '../keys';
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
  }
}

export interface AuthOptions {
  keys: KeyRing;
  disabled: boolean;
}

const READS = new Set(['GET', 'HEAD']);

/**
 * Bearer-token auth, checked in `onRequest` so an unauthenticated request is refused before its
 * body is read. Tokens are compared as SHA-256 digests with timingSafeEqual against every key,
 * so neither a token's length nor which key matched shows in the timing. Tokens are never logged.
 */
export const authPlugin = fp<AuthOptions>(
  async (app, options) => {
    if (options.disabled) app.log.warn('authentication is DISABLED (HERALD_INSECURE_NO_AUTH=true): every caller is admin; never run this in production');

    app.addHook('onRequest', async (request: FastifyRequest) => {
      // Closed by default: a route that forgets to say who may call it is admin-only. Unknown
      // routes (404) and the Swagger UI assets are public.
      const url = request.routeOptions.url;
      const access = request.routeOptions.config.access ?? (url === undefined || url === '/docs' || url.startsWith('/docs/') ? 'public' : 'admin');
      if (access === 'public') return;
      if (options.disabled) {
        request.caller = { name: 'anonymous', role: 'admin', tenant: DEFAULT_TENANT };
        return;
      }
      const header = request.headers.authorization;
      const match = header ? /^Bearer[ ]+(\S+)\s*$/i.exec(header) : null;
      if (!match?.[1]) throw new HttpProblem(401, 'missing bearer token: send Authorization: Bearer <token>');
      const found = options.keys.match(match[1]);
      if (!found) throw new HttpProblem(401, 'unknown bearer token');
      if (found.role === 'viewer' && !READS.has(request.method)) throw new HttpProblem(403, 'the viewer role may only read (GET); this route writes');
      if (found.role === 'producer' && access !== 'producer') throw new HttpProblem(403, 'the producer role may not use this route; it needs admin');
      request.caller = found;
    });
  },
  { name: 'herald-auth' },
);
