import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SqlPool } from '../transaction.runner';
import type { CheckStatus } from '../types';
import { verifyWebhook, WebhookVerificationError, type HeaderBag } from '../webhook.verifier';
import { answerFromBarrier, type AnswerOptions } from './barrier.store';

/** Options of the check handlers. */
export interface CheckHandlerOptions extends AnswerOptions {
  /** The pool the barrier table lives in (the producer's database). */
  pool: SqlPool;
  /** Herald's `HERALD_CHECK_SECRET` (several during a rotation). */
  secret: string | readonly string[];
  /** Allowed clock difference for `webhook-timestamp` (default 300 s). */
  toleranceSeconds?: number;
}

/** A check answer as status code and JSON body. */
export interface CheckReply {
  statusCode: number;
  body: { status: CheckStatus } | { error: string };
}

const MAX_BODY_BYTES = 16_384;

/**
 * Answers one check-back call: verifies Herald's signature over the raw body, checks the call is
 * about the message it names, and answers from the barrier table. A refused call gets 401 and
 * any failure a 5xx, both of which Herald counts as `unknown` and asks again.
 */
export async function handleCheck(options: CheckHandlerOptions, headers: HeaderBag, rawBody: string | Buffer): Promise<CheckReply> {
  let verified;
  try {
    verified = verifyWebhook(options.secret, headers, rawBody, { toleranceSeconds: options.toleranceSeconds });
  } catch (err) {
    if (err instanceof WebhookVerificationError) return { statusCode: 401, body: { error: err.message } };
    throw err;
  }
  let id: unknown;
  try {
    id = (JSON.parse(rawBody.toString()) as { id?: unknown }).id;
  } catch {
    return { statusCode: 400, body: { error: 'body is not JSON' } };
  }
  // The signature covers webhook-id, so this ties the verified call to the message it asks about.
  if (typeof id !== 'string' || !verified.id.startsWith(`${id}:check:`)) return { statusCode: 400, body: { error: 'body id does not match webhook-id' } };
  return { statusCode: 200, body: { status: await answerFromBarrier(options.pool, id, options) } };
}

/** A Node `(req, res)` check handler, for `http.createServer`, Express, Koa's `req.raw`, etc. */
export function createCheckHandler(options: CheckHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const send = (reply: CheckReply) => res.writeHead(reply.statusCode, { 'content-type': 'application/json' }).end(JSON.stringify(reply.body));
    if (req.method !== 'POST') return send({ statusCode: 405, body: { error: 'POST only' } });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        send({ statusCode: 413, body: { error: 'body too large' } });
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) return;
      handleCheck(options, req.headers, Buffer.concat(chunks)).then(send, () => send({ statusCode: 500, body: { error: 'check failed' } }));
    });
  };
}

/** The slice of a Fastify instance the plugin uses; a real `FastifyInstance` fits it. */
export interface FastifyLike {
  addContentTypeParser(type: string, options: { parseAs: 'buffer'; bodyLimit?: number }, parser: (req: unknown, body: Buffer, done: (err: Error | null, body?: unknown) => void) => void): unknown;
  post(path: string, handler: (request: { headers: Record<string, string | string[] | undefined>; body: unknown }, reply: FastifyReplyLike) => Promise<unknown>): unknown;
}

/** The slice of a Fastify reply the plugin uses. */
export interface FastifyReplyLike {
  code(statusCode: number): FastifyReplyLike;
  send(payload: unknown): unknown;
}

/** Options of {@link heraldCheckPlugin}. */
export interface CheckPluginOptions extends CheckHandlerOptions {
  /** Route path (default `/herald/check`). */
  path?: string;
}

/**
 * A Fastify plugin mounting the check handler: `app.register(heraldCheckPlugin, { pool, secret })`.
 * It keeps the JSON body raw inside its own encapsulated context (the signature is over the bytes),
 * so the rest of the app parses JSON as before.
 */
export async function heraldCheckPlugin(app: FastifyLike, options: CheckPluginOptions): Promise<void> {
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, (_req, body, done) => done(null, body));
  app.post(options.path ?? '/herald/check', async (request, reply) => {
    const answer = await handleCheck(options, request.headers, request.body as Buffer);
    return reply.code(answer.statusCode).send(answer.body);
  });
}
