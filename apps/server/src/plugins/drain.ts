import type { FastifyInstance } from 'fastify';

/**
 * While the app closes, in-flight requests still get their answer, but with `Connection: close`:
 * otherwise a client's keep-alive socket stays open after the answer and holds `close()` until
 * the shutdown deadline kills the process.
 */
export function installDrain(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
}
