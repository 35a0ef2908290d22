import { startAmqpConsumer, startWebhookSink } from '@herald/test-support';

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
  const sink = await startWebhookSink(
    (hit, res) => {
      const id = hit.headers['webhook-id'];
      if (typeof id === 'string') arrivals.record(id, hit.arrivedAt);
      res.writeHead(200, { 'content-length': '0' }).end();
    },
    { record: false, keepAliveTimeoutMs: 30_000 },
  );
  return { url: sink.url(''), arrivals, close: sink.close };
}

/**
 * A topic exchange with one durable queue bound to everything, consumed with acks; records
 * each message's AMQP messageId. Both Herald's publishes and the raw baseline's land here.
 */
export async function startBenchAmqpConsumer(amqpUrl: string, exchange: string): Promise<{ arrivals: Arrivals; close: () => Promise<void> }> {
  const arrivals = new Arrivals();
  const consumer = await startAmqpConsumer(exchange, {
    url: amqpUrl,
    purge: false,
    prefetch: 500,
    onMessage: (msg) => {
      const id = msg.properties.messageId;
      if (typeof id === 'string') arrivals.record(id);
    },
  });
  return { arrivals, close: consumer.close };
}
