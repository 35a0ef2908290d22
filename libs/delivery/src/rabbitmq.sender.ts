import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import type { AttemptResult } from '@herald/domain';

export interface AmqpPublishRequest {
  exchange: string;
  routingKey: string;
  messageId: string;
  /** The payload as stored JSON text. */
  body: string;
  headers: Record<string, string>;
  /** Unique per attempt; lets a basic.return be matched to its publish. */
  publishId: string;
}

export interface RabbitPublisherOptions {
  url: string;
  confirmTimeoutMs?: number;
  /** How long a successful exchange check is trusted. */
  exchangeCheckTtlMs?: number;
}

type Settle = (error?: string) => void;

/**
 * Publishes on one confirm channel, reconnecting on demand. A publish succeeds only on a broker
 * ack with no basic.return before it: mandatory + unroutable, nack, channel closed and timeout
 * are all failures with a clear reason. A missing exchange would close the shared channel (and
 * fail every publish in flight), so exchanges are checked first on a throwaway channel.
 */
export class RabbitPublisher {
  private model?: ChannelModel;
  private channel?: ConfirmChannel;
  private opening?: Promise<ConfirmChannel>;
  private readonly pending = new Map<string, Settle>();
  private readonly returned = new Set<string>();
  private readonly checkedExchanges = new Map<string, number>();
  /** Exchange checks under way: concurrent publishes to one exchange share one probe. */
  private readonly checkingExchanges = new Map<string, Promise<string | undefined>>();
  /** Set while the channel's write buffer is full: publishes wait for its 'drain'. */
  private draining?: Promise<void>;
  private closed = false;

  constructor(private readonly options: RabbitPublisherOptions) {}

  /**
   * One attempt, bounded as a whole by the confirm timeout (connecting and the exchange check
   * included), so it always ends before the delivery's lease does.
   */
  async publish(req: AmqpPublishRequest): Promise<AttemptResult> {
    const started = performance.now();
    const timeoutMs = this.options.confirmTimeoutMs ?? 10_000;
    const deadline = started + timeoutMs;
    const fail = (error: string): AttemptResult => ({ ok: false, durationMs: performance.now() - started, error });
    const beforeDeadline = <T>(work: Promise<T>, what: string) => withDeadline(work, deadline - performance.now(), `${what} took longer than ${timeoutMs} ms`);
    let channel: ConfirmChannel;
    try {
      channel = await beforeDeadline(this.ensureChannel(), 'connecting to RabbitMQ');
    } catch (err) {
      return fail(`cannot reach RabbitMQ: ${(err as Error).message}`);
    }
    let missing: string | undefined;
    try {
      missing = await beforeDeadline(this.checkExchange(req.exchange), 'checking the exchange');
    } catch (err) {
      return fail((err as Error).message);
    }
    if (missing) return fail(missing);
    if (this.draining) {
      try {
        await beforeDeadline(this.draining, 'waiting for the channel to drain');
      } catch (err) {
        return fail((err as Error).message);
      }
      // The channel may have closed while it drained.
      if (this.channel !== channel) return fail('channel closed before the message was sent');
    }

    const error = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => settle(`no broker confirm within ${timeoutMs} ms`), Math.max(0, deadline - performance.now()));
      const settle: Settle = (reason) => {
        if (!this.pending.delete(req.publishId)) return;
        clearTimeout(timer);
        this.returned.delete(req.publishId);
        resolve(reason);
      };
      this.pending.set(req.publishId, settle);
      try {
        const accepted = channel.publish(
          req.exchange,
          req.routingKey,
          Buffer.from(req.body, 'utf8'),
          {
            persistent: true,
            mandatory: true,
            messageId: req.messageId,
            contentType: 'application/json',
            timestamp: Math.floor(Date.now() / 1000),
            headers: { ...req.headers, 'herald-publish-id': req.publishId },
          },
          (err) => {
            if (err) return settle(`broker refused the message (nack): ${err.message ?? err}`);
            // The broker sends basic.return before the ack of an unroutable mandatory message.
            if (this.returned.has(req.publishId)) {
              return settle(`unroutable: no queue is bound to exchange "${req.exchange}" for routing key "${req.routingKey}"`);
            }
            settle();
          },
        );
        // The message is buffered either way; a full buffer holds the next publishes, not this one.
        if (!accepted) this.holdUntilDrained(channel);
      } catch (err) {
        settle(`publish failed: ${(err as Error).message}`);
      }
    });
    return error ? fail(error) : { ok: true, durationMs: performance.now() - started };
  }

  /** Resolves when a confirm channel is open (connecting if needed): the readiness probe. */
  async ping(): Promise<void> {
    await this.ensureChannel();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.failAll('publisher closed');
    const model = this.model;
    this.model = undefined;
    this.channel = undefined;
    await model?.close().catch(() => undefined);
  }

  private async ensureChannel(): Promise<ConfirmChannel> {
    if (this.closed) throw new Error('publisher closed');
    if (this.channel) return this.channel;
    this.opening ??= this.open().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async open(): Promise<ConfirmChannel> {
    if (!this.model) {
      const model = await connect(this.options.url, { timeout: 5_000 });
      model.on('error', () => undefined); // 'close' follows and does the work
      model.on('close', () => {
        if (this.model === model) {
          this.model = undefined;
          this.channel = undefined;
          this.checkedExchanges.clear();
          this.failAll('connection to RabbitMQ closed before the broker confirmed');
        }
      });
      this.model = model;
    }
    const channel = await this.model.createConfirmChannel();
    channel.on('error', () => undefined);
    channel.on('close', () => {
      if (this.channel === channel) {
        this.channel = undefined;
        // The broker closes a channel on e.g. a deleted exchange: trust no earlier check.
        this.checkedExchanges.clear();
        this.failAll('channel closed before the broker confirmed');
      }
    });
    channel.on('return', (message) => {
      const id = message.properties.headers?.['herald-publish-id'];
      // A return for a publish that already timed out has nobody to tell.
      if (typeof id === 'string' && this.pending.has(id)) this.returned.add(id);
    });
    this.channel = channel;
    return channel;
  }

  /** Publishes pipeline on the one channel; once its socket buffer is full they wait for it to drain. */
  private holdUntilDrained(channel: ConfirmChannel): void {
    this.draining ??= new Promise<void>((resolve) => {
      const done = () => {
        channel.off('drain', done);
        channel.off('close', done);
        this.draining = undefined;
        resolve();
      };
      channel.on('drain', done);
      channel.on('close', done);
    });
  }

  private checkExchange(exchange: string): Promise<string | undefined> {
    if (exchange === '') return Promise.resolve(undefined); // the default exchange always exists
    const checkedAt = this.checkedExchanges.get(exchange);
    if (checkedAt !== undefined && Date.now() - checkedAt < (this.options.exchangeCheckTtlMs ?? 30_000)) return Promise.resolve(undefined);
    let check = this.checkingExchanges.get(exchange);
    if (!check) {
      check = this.probeExchange(exchange).finally(() => this.checkingExchanges.delete(exchange));
      this.checkingExchanges.set(exchange, check);
    }
    return check;
  }

  private async probeExchange(exchange: string): Promise<string | undefined> {
    const model = this.model;
    if (!model) return 'connection to RabbitMQ lost';
    let probe;
    try {
      probe = await model.createChannel();
    } catch (err) {
      return `cannot open a channel: ${(err as Error).message}`;
    }
    probe.on('error', () => undefined);
    try {
      await probe.checkExchange(exchange);
      this.checkedExchanges.set(exchange, Date.now());
      await probe.close().catch(() => undefined);
      return undefined;
    } catch (err) {
      // The broker closed the probe channel; nothing else is affected.
      return `exchange "${exchange}" does not exist (${(err as Error).message.replace(/^Operation failed: /, '')})`;
    }
  }

  private failAll(reason: string): void {
    for (const settle of [...this.pending.values()]) settle(reason);
  }
}

/** Resolves with `work`, or rejects with `message` once `ms` have passed. */
function withDeadline<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), Math.max(0, ms));
    }),
  ]).finally(() => clearTimeout(timer));
}
