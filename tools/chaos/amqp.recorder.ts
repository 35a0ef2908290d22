import { connect, type ChannelModel } from 'amqplib';
import { bump, tenantOfDeliveryId } from './webhook.endpoint';

/**
 * A RabbitMQ consumer on a durable queue bound to the exchange, recording message ids and
 * reconnecting whenever the broker goes away (stop_app).
 */
export class AmqpRecorder {
  readonly ok = new Map<string, number>();
  /** Messages whose `herald-tenant` header is not the tenant their `messageId` names (acked, not counted). */
  readonly wrongTenant = new Map<string, number>();
  private model?: ChannelModel;
  private stopped = false;
  reconnects = 0;

  constructor(
    private readonly url: string,
    readonly exchange: string,
  ) {}

  get queue(): string {
    return `${this.exchange}.q`;
  }

  async start(): Promise<void> {
    await this.connectOnce();
  }

  private async connectOnce(): Promise<void> {
    const model = await connect(this.url);
    this.model = model;
    model.on('error', () => undefined);
    model.on('close', () => {
      if (!this.stopped) void this.reconnect();
    });
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    await channel.assertExchange(this.exchange, 'topic', { durable: true });
    await channel.assertQueue(this.queue, { durable: true });
    await channel.bindQueue(this.queue, this.exchange, '#');
    await channel.prefetch(200);
    await channel.consume(this.queue, (msg) => {
      if (!msg) return;
      const id = String(msg.properties.messageId);
      bump(msg.properties.headers?.['herald-tenant'] === tenantOfDeliveryId(id) ? this.ok : this.wrongTenant, id);
      channel.ack(msg);
    });
  }

  private async reconnect(): Promise<void> {
    while (!this.stopped) {
      await new Promise((r) => setTimeout(r, 500));
      try {
        await this.connectOnce();
        this.reconnects++;
        return;
      } catch {
        // broker still down
      }
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.model?.close().catch(() => undefined);
  }
}
