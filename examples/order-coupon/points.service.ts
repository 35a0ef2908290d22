import { connect, type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import type { Pool } from 'mysql2/promise';
import { consumeOnce, ensureInboxTable, mysql2Transactions, type AmqpChannelLike } from '@herald/client/consumer';
import { say } from './log';

/**
 * A RabbitMQ consumer: credits loyalty points once per paid order. The SDK acks only after the
 * points and the inbox row are committed, and skips a message id it has already processed.
 */
export class PointsService {
  private model!: ChannelModel;
  private channel!: Channel;
  private consumerTag: string | undefined;
  readonly queue: string;
  /** Message ids whose ack is lost once after the points were committed (the broker redelivers). */
  readonly loseAckOnce = new Set<string>();
  duplicatesIgnored = 0;

  constructor(
    private readonly pool: Pool,
    private readonly amqpUrl: string,
    readonly exchange: string,
  ) {
    this.queue = `${exchange}.points`;
  }

  async start(): Promise<void> {
    await ensureInboxTable(this.pool);
    await this.pool.query('CREATE TABLE IF NOT EXISTS points (order_id VARCHAR(64) NOT NULL, message_id VARCHAR(128) NOT NULL, points INT NOT NULL, PRIMARY KEY (order_id, message_id))');
    this.model = await connect(this.amqpUrl);
    this.channel = await this.model.createChannel();
    await this.channel.assertExchange(this.exchange, 'topic', { durable: true });
    // Durable, so messages wait here while the service is down.
    await this.channel.assertQueue(this.queue, { durable: true });
    await this.channel.bindQueue(this.queue, this.exchange, '#');
    await this.resume();
  }

  /** Stops consuming, as if the service were down; messages wait in the queue. */
  async pause(): Promise<void> {
    if (this.consumerTag) await this.channel.cancel(this.consumerTag);
    this.consumerTag = undefined;
    say('points', 'down (not consuming); messages wait in the queue');
  }

  async resume(): Promise<void> {
    if (this.consumerTag) return;
    const channel = this.channel;
    // The real channel, except that an ack can be "lost" (the consumer dies after its commit).
    const flaky: AmqpChannelLike = {
      consume: (queue, onMessage, options) => channel.consume(queue, onMessage as (msg: ConsumeMessage | null) => void, options),
      ack: (msg) => {
        const id = msg.properties.messageId ?? '';
        if (this.loseAckOnce.delete(id)) {
          say('points', `committed, but died before acking ${id}: the broker redelivers it`);
          channel.nack(msg as ConsumeMessage, false, true);
        } else channel.ack(msg as ConsumeMessage);
      },
      nack: (msg, allUpTo, requeue) => channel.nack(msg as ConsumeMessage, allUpTo, requeue),
    };
    const onDuplicate = (event: { id: string }) => {
      this.duplicatesIgnored++;
      say('points', `${event.id} arrived again: already in the inbox, ignored (acked)`);
    };
    const { consumerTag } = await consumeOnce(flaky, this.queue, { transactions: mysql2Transactions(this.pool), consumer: 'points', retryDelayMs: 200, onDuplicate }, async (tx, event) => {
      const { orderId } = event.payload as { orderId: string };
      await tx.query('INSERT INTO points (order_id, message_id, points) VALUES (?, ?, 42)', [orderId, event.id]);
      say('points', `credited 42 points for ${orderId}${event.redelivered ? ' (redelivered)' : ''}`);
    });
    this.consumerTag = consumerTag;
  }

  async points(orderId: string): Promise<number> {
    const [rows] = (await this.pool.query('SELECT COUNT(*) AS n FROM points WHERE order_id = ?', [orderId])) as unknown as [Array<{ n: number }>];
    return Number(rows[0]?.n ?? 0);
  }

  async close(): Promise<void> {
    await this.channel.deleteQueue(this.queue).catch(() => undefined);
    await this.channel.deleteExchange(this.exchange).catch(() => undefined);
    await this.model.close().catch(() => undefined);
  }
}
