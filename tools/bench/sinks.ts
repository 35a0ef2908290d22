import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type ChannelModel } from 'amqplib';

/**
 * Arrival times (performance.now(), this process's clock) of messages at a sink, by message id.
 * The load generator runs in the same process, so confirm → delivered is one clock's difference.
 */
export class Arrivals {
  private readonly firstAt = new Map<string, number>();
  private readonly counts = new Map<string, number>();
  private readonly lastAt = new Map<string, number>();
  total = 0;

  record(id: string, at = performance.now()): void {
    this.total++;
    if (!this.firstAt.has(id)) this.firstAt.set(id, at);
    this.lastAt.set(id, at);
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  }

  /** When the `n`th copy of `id` arrived (fan-out: the last subscription's copy), if it did. */
  completedAt(id: string, n: number): number | undefined {
    return (this.counts.get(id) ?? 0) >= n ? this.lastAt.get(id) : undefined;
  }

  reset(): void {
    this.firstAt.clear();
    this.counts.clear();
    this.lastAt.clear();
    this.total = 0;
  }
}

/** A local webhook endpoint answering 200 at once and recording `webhook-id`s. */
export async function startBenchWebhookSink(): Promise<{ url: string; arrivals: Arrivals; close: () => Promise<void> }> {
  const arrivals = new Arrivals();
  const server: Server = createServer((req, res) => {
    const at = performance.now();
    const id = req.headers['webhook-id'];
    req.resume();
    req.on('end', () => {
      if (typeof id === 'string') arrivals.record(id, at);
      res.writeHead(200, { 'content-length': '0' }).end();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    arrivals,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A topic exchange with one durable queue bound to everything, consumed with acks; records
 * each message's AMQP messageId. Both Herald's publishes and the raw baseline's land here.
 */
export async function startBenchAmqpConsumer(amqpUrl: string, exchange: string): Promise<{ arrivals: Arrivals; close: () => Promise<void> }> {
  const arrivals = new Arrivals();
  const model: ChannelModel = await connect(amqpUrl);
  const channel = await model.createChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true });
  const queue = `${exchange}.q`;
  await channel.assertQueue(queue, { durable: true });
  await channel.bindQueue(queue, exchange, '#');
  await channel.prefetch(500);
  await channel.consume(queue, (msg) => {
    if (!msg) return;
    const id = msg.properties.messageId;
    if (typeof id === 'string') arrivals.record(id);
    channel.ack(msg);
  });
  return {
    arrivals,
    close: async () => {
      await channel.deleteQueue(queue).catch(() => undefined);
      await channel.deleteExchange(exchange).catch(() => undefined);
      await model.close().catch(() => undefined);
    },
  };
}
