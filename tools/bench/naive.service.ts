/**
 * The outbox service a team would write in an afternoon instead of running Herald, as the
 * benchmark's peer: plain node:http (by default), pooled mysql2, one autocommit statement per step.
 *
 * - `POST /v1/messages` → INSERT a prepared row (201); with `confirm: true`, INSERT, publish to
 *   RabbitMQ on a confirm channel, UPDATE it delivered (201 once the broker confirmed).
 * - `POST /v1/messages/{id}/confirm` → UPDATE prepared → confirmed (200).
 * - A background sender SELECTs confirmed rows, POSTs each to one webhook URL and UPDATEs it
 *   delivered once the endpoint answered 2xx.
 *
 * It does strictly less than Herald: no authentication or validation beyond the three fields (on
 * node:http), no content hash, batching, signatures, retries with backoff, leases, check-back,
 * attempt records or subscriptions. Same request bodies and paths as Herald's, so one load client
 * drives both.
 *
 * With `stack: 'fastify'` the same handlers sit behind the core of Herald's HTTP stack instead:
 * Fastify, Herald's own prepare and id schemas validated as strictly as Herald validates them,
 * response schemas, and a bearer token checked by its SHA-256 digest (no logging, metrics,
 * tracing or rate limit). Side by side with node:http it shows what that core costs.
 *
 * Run as its own process: `node --import tsx tools/bench/naive.service.ts` with NAIVE_DATABASE_URL,
 * NAIVE_WEBHOOK_URL, optionally NAIVE_AMQP_URL and NAIVE_EXCHANGE, NAIVE_STACK and NAIVE_TOKEN,
 * HOST and PORT.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { createPool, type ResultSetHeader, type RowDataPacket } from 'mysql2/promise';
import { Type } from '@sinclair/typebox';
import addFormats from 'ajv-formats';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { MessageIdParams, PrepareMessageBody } from '@herald/contract';
import { request } from 'undici';

/** Which HTTP layer the naive peer's handlers sit behind. */
export type NaiveStack = 'node-http' | 'fastify';
export const NAIVE_STACKS: readonly NaiveStack[] = ['node-http', 'fastify'];

export interface NaiveServiceOptions {
  databaseUrl: string;
  /** Where the sender POSTs every confirmed message. */
  webhookUrl: string;
  /** RabbitMQ for `confirm: true` messages; without it they are refused. */
  amqpUrl?: string;
  exchange?: string;
  host?: string;
  port?: number;
  /** MySQL connections (Herald's default pool is 20 too). */
  poolSize?: number;
  /** How long the sender sleeps when it found nothing to send. */
  idlePollMs?: number;
  stack?: NaiveStack;
  /** With `stack: 'fastify'`: the bearer token every request must carry (401 otherwise). */
  token?: string;
}

export interface NaiveService {
  url: string;
  close: () => Promise<void>;
}

export const NAIVE_TABLE = 'naive_outbox';

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS ${NAIVE_TABLE} (
  id VARCHAR(128) NOT NULL PRIMARY KEY,
  topic VARCHAR(255) NOT NULL,
  payload LONGTEXT NOT NULL,
  status ENUM('prepared', 'confirmed', 'publishing', 'delivered') NOT NULL,
  created_at DATETIME(3) NOT NULL,
  confirmed_at DATETIME(3) NULL,
  delivered_at DATETIME(3) NULL,
  KEY naive_outbox_status (status, created_at)
)`;

export async function startNaiveService(options: NaiveServiceOptions): Promise<NaiveService> {
  if (options.stack === 'fastify' && !options.token) throw new Error('the fastify stack needs a token');
  const pool = createPool({ uri: options.databaseUrl, connectionLimit: options.poolSize ?? 20, timezone: 'Z' });
  await pool.query(CREATE_TABLE);
  let amqp: ChannelModel | undefined;
  let channel: ConfirmChannel | undefined;
  if (options.amqpUrl && options.exchange) {
    amqp = await connect(options.amqpUrl);
    channel = await amqp.createConfirmChannel();
    await channel.assertExchange(options.exchange, 'topic', { durable: true });
  }

  const publish = (id: string, topic: string, body: string) =>
    new Promise<void>((resolve, reject) => {
      if (!channel || !options.exchange) return reject(new Error('no RabbitMQ configured'));
      channel.publish(options.exchange, topic, Buffer.from(body), { persistent: true, messageId: id, contentType: 'application/json' }, (err) =>
        err ? reject(new Error(`broker nacked ${id}`)) : resolve(),
      );
    });

  async function prepare(body: Record<string, unknown>): Promise<Answer> {
    const { id, topic, payload } = body;
    if (typeof id !== 'string' || typeof topic !== 'string' || payload === undefined) return { status: 400, body: { error: 'id, topic and payload are required' } };
    const json = JSON.stringify(payload);
    const direct = body.confirm === true;
    try {
      await pool.execute(`INSERT INTO ${NAIVE_TABLE} (id, topic, payload, status, created_at, confirmed_at) VALUES (?, ?, ?, ?, NOW(3), ?)`, [
        id,
        topic,
        json,
        direct ? 'publishing' : 'prepared',
        direct ? new Date() : null,
      ]);
    } catch (err) {
      if ((err as { code?: string }).code === 'ER_DUP_ENTRY') return { status: 409, body: { error: `message ${id} exists` } };
      throw err;
    }
    if (direct) {
      await publish(id, topic, json);
      await pool.execute(`UPDATE ${NAIVE_TABLE} SET status = 'delivered', delivered_at = NOW(3) WHERE id = ?`, [id]);
    }
    return { status: 201, body: { id, status: direct ? 'delivered' : 'prepared' } };
  }

  async function confirm(id: string): Promise<Answer> {
    const [result] = await pool.execute<ResultSetHeader>(`UPDATE ${NAIVE_TABLE} SET status = 'confirmed', confirmed_at = NOW(3) WHERE id = ? AND status = 'prepared'`, [id]);
    return result.affectedRows === 1 ? { status: 200, body: { id, status: 'confirmed' } } : { status: 404, body: { error: `no prepared message ${id}` } };
  }

  let server: Server;
  let fastify: FastifyInstance | undefined;
  if (options.stack === 'fastify') {
    fastify = fastifyFront(options.token as string, prepare, confirm);
    await fastify.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' });
    server = fastify.server;
  } else {
    server = createServer(handleNodeHttp);
    await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  }

  function handleNodeHttp(req: IncomingMessage, res: ServerResponse) {
    handle(req, res).catch((err: unknown) => {
      console.error(err);
      if (!res.headersSent) reply(res, 500, { error: 'internal error' });
    });
  }
  server.keepAliveTimeout = 30_000;

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = req.url ?? '/';
    if (req.method === 'GET' && url === '/readyz') return reply(res, 200, { ok: true });
    if (req.method !== 'POST') return reply(res, 404, { error: 'not found' });
    const text = await readBody(req);
    if (url === '/v1/messages') {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return reply(res, 400, { error: 'body is not JSON' });
      }
      if (typeof body !== 'object' || body === null) return reply(res, 400, { error: 'body is not an object' });
      const answer = await prepare(body as Record<string, unknown>);
      return reply(res, answer.status, answer.body);
    }
    const match = /^\/v1\/messages\/([^/]+)\/confirm$/.exec(url);
    if (match?.[1]) {
      const answer = await confirm(decodeURIComponent(match[1]));
      return reply(res, answer.status, answer.body);
    }
    reply(res, 404, { error: 'not found' });
  }

  // The sender: one loop, the rows of one SELECT sent concurrently, each marked delivered on a 2xx.
  let running = true;
  let wake: (() => void) | undefined;
  const idlePollMs = options.idlePollMs ?? 50;
  const sendConfirmed = async (): Promise<number> => {
    const [rows] = await pool.query<RowDataPacket[]>(`SELECT id, payload FROM ${NAIVE_TABLE} WHERE status = 'confirmed' ORDER BY created_at LIMIT 100`);
    await Promise.all(
      rows.map(async (row) => {
        try {
          const res = await request(options.webhookUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'webhook-id': row.id as string },
            body: row.payload as string,
          });
          await res.body.dump();
          if (res.statusCode >= 200 && res.statusCode < 300) {
            await pool.execute(`UPDATE ${NAIVE_TABLE} SET status = 'delivered', delivered_at = NOW(3) WHERE id = ?`, [row.id]);
          }
        } catch (err) {
          // Left confirmed: the next SELECT picks it up again.
          console.error(`send ${String(row.id)}: ${(err as Error).message}`);
        }
      }),
    );
    return rows.length;
  };
  const sender = (async () => {
    while (running) {
      let sent = 0;
      try {
        sent = await sendConfirmed();
      } catch (err) {
        console.error(`sender: ${(err as Error).message}`);
      }
      if (sent === 0 && running) await new Promise<void>((r) => ((wake = r), setTimeout(r, idlePollMs)));
    }
  })();

  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      running = false;
      wake?.();
      server.closeIdleConnections();
      if (fastify) await fastify.close();
      else await new Promise<void>((resolve) => server.close(() => resolve()));
      await sender;
      await channel?.close().catch(() => undefined);
      await amqp?.close().catch(() => undefined);
      await pool.end();
    },
  };
}

type Answer = { status: number; body: object };

/**
 * The handlers behind Fastify: the token checked in an `onRequest` hook by its digest, bodies
 * validated by Herald's schemas with Herald's Ajv options (no coercion, unknown fields refused),
 * answers serialized by their schemas.
 */
function fastifyFront(token: string, prepare: (body: Record<string, unknown>) => Promise<Answer>, confirm: (id: string) => Promise<Answer>): FastifyInstance {
  const digest = createHash('sha256').update(token).digest();
  const app = Fastify({
    logger: false,
    // Ids are up to 128 characters; Fastify's default refuses path params over 100.
    routerOptions: { maxParamLength: 256 },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false, strict: false }, plugins: [[addFormats.default, ['uri', 'date-time']]] },
  });
  // As the node:http front does: an unexpected error is printed (the benchmark shows the output).
  app.setErrorHandler((error: FastifyError, _req, reply) => {
    if ((error.statusCode ?? 500) >= 500) console.error(error);
    return reply.send(error);
  });
  app.addHook('onRequest', async (req, reply) => {
    if (req.url === '/readyz') return;
    const header = req.headers.authorization ?? '';
    const given = createHash('sha256').update(header.startsWith('Bearer ') ? header.slice(7) : '').digest();
    if (!timingSafeEqual(given, digest)) return reply.code(401).send({ error: 'missing or unknown token' });
  });
  const answer = Type.Object({ id: Type.String(), status: Type.String() });
  const problem = Type.Object({ error: Type.String() });
  app.get('/readyz', async () => ({ ok: true }));
  app.post(
    '/v1/messages',
    {
      schema: {
        body: PrepareMessageBody,
        response: { 201: answer, 409: problem },
      },
    },
    async (req, reply) => {
      const { status, body } = await prepare(req.body as Record<string, unknown>);
      return reply.code(status as 201 | 409).send(body);
    },
  );
  app.post('/v1/messages/:id/confirm', { schema: { params: MessageIdParams, response: { 200: answer, 404: problem } } }, async (req, reply) => {
    const { status, body } = await confirm((req.params as { id: string }).id);
    return reply.code(status as 200 | 404).send(body);
  });
  return app;
}

function reply(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

// As a process (the benchmark starts it like Herald): configuration from the environment.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const env = (name: string) => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is required`);
    return value;
  };
  const service = await startNaiveService({
    databaseUrl: env('NAIVE_DATABASE_URL'),
    webhookUrl: env('NAIVE_WEBHOOK_URL'),
    amqpUrl: process.env.NAIVE_AMQP_URL,
    exchange: process.env.NAIVE_EXCHANGE,
    host: process.env.HOST,
    port: Number(process.env.PORT ?? 0),
    stack: (process.env.NAIVE_STACK ?? 'node-http') as NaiveStack,
    token: process.env.NAIVE_TOKEN,
  });
  console.log(`naive service listening at ${service.url}`);
  const stop = () => void service.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
