import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type ChannelModel, type ConsumeMessage } from 'amqplib';

export const AMQP_URL = process.env.HERALD_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export interface Hit {
  at: number;
  /** performance.now() as the request arrived, for latencies on this process's clock. */
  arrivedAt: number;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export type SinkHandler = (hit: Hit, res: ServerResponse) => void | Promise<void>;

export interface SinkOptions {
  /**
   * false: the body is drained unread, the handler runs as the request arrives and nothing is kept
   * in `hits` (the benchmark's sink, where every copy and allocation adds to the measurement).
   */
  record?: boolean;
  keepAliveTimeoutMs?: number;
}

/** A real HTTP server that records every webhook it receives; the handler decides the answer. */
export async function startWebhookSink(handler: SinkHandler = (_h, res) => void res.writeHead(200).end('ok'), options: SinkOptions = {}) {
  const hits: Hit[] = [];
  let current = handler;
  const answer = (hit: Hit, res: ServerResponse) => void Promise.resolve(current(hit, res)).catch(() => res.destroy());
  const server = createServer((req, res) => {
    const arrivedAt = performance.now();
    if (options.record === false) {
      const hit = { at: Date.now(), arrivedAt, path: req.url ?? '/', headers: req.headers, body: '' };
      req.resume();
      req.on('end', () => answer(hit, res));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const hit = { at: Date.now(), arrivedAt, path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      hits.push(hit);
      answer(hit, res);
    });
  });
  if (options.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = options.keepAliveTimeoutMs;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path = '/hook') => `http://127.0.0.1:${port}${path}`,
    hits,
    hitsFor: (messageId: string) => hits.filter((h) => h.headers['webhook-id'] === messageId),
    /** Open connections; 0 once a killed sender's sockets are closed and all it sent was read. */
    connections: () => new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n)))),
    respond: (next: SinkHandler) => {
      current = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A producer's check endpoint: answers each message id from `answers`, `unknown` when absent. */
export function startCheckEndpoint(answers: ReadonlyMap<string, string>) {
  return startWebhookSink((hit, res) => {
    const { id } = JSON.parse(hit.body) as { id: string };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: answers.get(id) ?? 'unknown' }));
  });
}

export interface AmqpConsumerOptions {
  url?: string;
  bindingKey?: string;
  /** Empty the queue left by an earlier run first (default); false drains what it holds. */
  purge?: boolean;
  prefetch?: number;
  /** Called for each message before its ack; with it, messages are not kept in `received`. */
  onMessage?: (msg: ConsumeMessage) => void;
}

/** A RabbitMQ topic exchange with a durable queue bound to it, and a consumer that acks each message. */
export async function startAmqpConsumer(exchange: string, options: AmqpConsumerOptions = {}) {
  const model: ChannelModel = await connect(options.url ?? AMQP_URL);
  const channel = await model.createChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true });
  const queue = `${exchange}.q`;
  await channel.assertQueue(queue, { durable: true });
  if (options.purge !== false) await channel.purgeQueue(queue);
  await channel.bindQueue(queue, exchange, options.bindingKey ?? '#');
  if (options.prefetch) await channel.prefetch(options.prefetch);
  const received: ConsumeMessage[] = [];
  const onMessage = options.onMessage ?? ((msg: ConsumeMessage) => void received.push(msg));
  await channel.consume(queue, (msg) => {
    if (!msg) return;
    onMessage(msg);
    channel.ack(msg);
  });
  return {
    received,
    close: async () => {
      await channel.deleteQueue(queue).catch(() => undefined);
      await channel.deleteExchange(exchange).catch(() => undefined);
      await model.close().catch(() => undefined);
    },
  };
}
