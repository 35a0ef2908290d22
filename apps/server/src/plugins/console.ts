import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

// The bundle runs from dist/apps/server/main.js; `tsx` runs this file from apps/server/src/plugins.
const CANDIDATES = ['../console', '../../../../dist/apps/console'];

/** The built console's directory (dist/apps/console), or undefined when it was not built. */
export function consoleAssets(): string | undefined {
  for (const relative of CANDIDATES) {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(`${dir}/index.html`)) return dir;
  }
  return undefined;
}

// The console talks to this origin only: no script, style, font, image or request goes anywhere else.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * Serves the operator console's static assets at /console/. Public: the page holds no data, and
 * every call it makes carries the token the operator signs in with.
 */
export const consolePlugin: FastifyPluginAsync<{ root: string | undefined }> = async (app, options) => {
  app.addHook('onSend', async (_request, reply) => {
    reply.header('content-security-policy', CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
  });
  app.get('/console', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/console/'));
  if (!options.root) {
    app.log.warn('the console was not built (dist/apps/console is missing): /console answers 404; run npm run build');
    app.get('/console/*', { schema: { hide: true } }, async (_request, reply) =>
      reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'the console was not built: run npm run build' }),
    );
    return;
  }
  await app.register(fastifyStatic, { root: options.root, prefix: '/console/', decorateReply: false, index: 'index.html', schemaHide: true, maxAge: '1h' });
};
