import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const MESSAGE_URL = /^\/v1\/messages\/([^/?#]+)/;
const SUBSCRIPTION_URL = /^\/v1\/subscriptions\/([^/?#]+)/;
const ID = /^[A-Za-z0-9_:-]{1,128}$/;

function idIn(url: string, pattern: RegExp): string | undefined {
  const raw = pattern.exec(url)?.[1];
  if (!raw) return undefined;
  try {
    const id = decodeURIComponent(raw);
    return ID.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Every request's logger carries the id of the message (or subscription) its URL names, from its
 * first line ("incoming request", whose URL shows the id) to its last, so a search for
 * `messageId` finds every line about a message. The URL is the only place to read it that
 * early: params are parsed after the request logger is made.
 */
export function installRequestLogBindings(app: FastifyInstance): void {
  app.setChildLoggerFactory((logger, bindings, options, rawRequest) => {
    const url = rawRequest.url ?? '';
    const messageId = idIn(url, MESSAGE_URL);
    const subscriptionId = messageId ? undefined : idIn(url, SUBSCRIPTION_URL);
    return logger.child({ ...bindings, ...(messageId && { messageId }), ...(subscriptionId && { subscriptionId }) }, options);
  });
}

/** Binds the message id to the rest of a request's log lines (a prepare learns it from the body, or makes it). */
export function bindMessageLog(request: FastifyRequest, reply: FastifyReply, messageId: string): void {
  // The request's logger is its own child (see above): adding to its bindings spares a second child.
  const log = request.log as FastifyRequest['log'] & { setBindings?: (bindings: object) => void };
  if (log.setBindings) log.setBindings({ messageId });
  else request.log = request.log.child({ messageId });
  // Fastify's "request completed" line is written through the reply's logger.
  reply.log = request.log;
}
