import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type ChannelModel, type ConsumeMessage } from 'amqplib';

export const AMQP_URL = process.env.HERALD_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export interface Hit {
  at: number;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export type SinkHandler = (hit: Hit, res: ServerResponse) => void | Promise<void>;

/** A real HTTP server that records every webhook it receives; the handler decides the answer. */
export async function startWebhookSink(handler: SinkHandler = (_h, res) => void res.writeHead(200).end('ok')) {
  const hits: Hit[] = [];
  let current = handler;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const hit = { at: Date.now(), path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      hits.push(hit);
      void Promise.resolve(current(hit, res)).catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path = '/hook') => `http://127.0.0.1:${port}${path}`,
    hits,
    hitsFor: (messageId: string) => hits.filter((h) => h.headers['webhook-id'] === messageId),
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

/** A RabbitMQ exchange with a durable queue bound to it, and a consumer that records messages. */
export async function startAmqpConsumer(exchange: string, bindingKey = '#', options: { purge?: boolean } = {}) {
  const model: ChannelModel = await connect(AMQP_URL);
  const channel = await model.createChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true });
  const queue = `${exchange}.q`;
  await channel.assertQueue(queue, { durable: true });
  if (options.purge !== false) await channel.purgeQueue(queue);
  await channel.bindQueue(queue, exchange, bindingKey);
  const received: ConsumeMessage[] = [];
  await channel.consume(queue, (msg) => {
    if (msg) {
      received.push(msg);
      channel.ack(msg);
    }
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

/** Polls until `check` returns a truthy value, or fails with `what` after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T> | T, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
