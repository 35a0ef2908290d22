import { CONSUMER_ID } from '../sql.guards';
import { processOnce, type InboxOptions } from './inbox';

/** The slice of an amqplib message the consumer reads. */
export interface AmqpMessageLike {
  content: Buffer;
  properties: { messageId?: string; headers?: Record<string, unknown> };
  fields: { routingKey: string; redelivered: boolean };
}

/** The slice of an amqplib channel the consumer uses (`connection.createChannel()`). */
export interface AmqpChannelLike {
  consume(queue: string, onMessage: (msg: AmqpMessageLike | null) => void, options?: { noAck?: boolean }): Promise<{ consumerTag: string }>;
  ack(msg: AmqpMessageLike): void;
  nack(msg: AmqpMessageLike, allUpTo?: boolean, requeue?: boolean): void;
  prefetch?(count: number): Promise<unknown>;
}

/** One message from Herald on RabbitMQ. */
export interface AmqpEvent {
  /** AMQP `messageId`: the message id, `<tenant>/<id>` for tenants other than `default`; unique across tenants. */
  id: string;
  /** The `herald-tenant` header (`default` from a Herald without tenants). */
  tenant: string;
  topic: string;
  key: string | null;
  payload: unknown;
  redelivered: boolean;
}


/** Why a message can never be processed: it is dead-lettered instead of retried. */
export type PoisonReason = 'no-message-id' | 'invalid-message-id' | 'invalid-json';

/** Options of {@link consumeOnce}. */
export interface AmqpConsumerOptions<Tx> extends InboxOptions<Tx> {
  /** Wait before a failed message is put back, so a persistent failure does not spin (default 1 s). */
  retryDelayMs?: number;
  /**
   * Unacknowledged messages in flight on this consumer (`channel.prefetch`, default 16). Without a
   * limit RabbitMQ pushes the whole queue into the process at once. `null` leaves the channel's
   * setting alone.
   */
  prefetch?: number | null;
  /** Called when a message id was already processed (the message is acked and nothing runs). */
  onDuplicate?: (event: AmqpEvent) => void;
  /**
   * Called when a message can never be processed (no `messageId`, one that is not a Herald id, or
   * a body that is not JSON). It
   * has been rejected without requeue, i.e. to the queue's dead-letter exchange — give the queue
   * one (`x-dead-letter-exchange`), or RabbitMQ drops it.
   */
  onPoison?: (reason: PoisonReason, msg: AmqpMessageLike) => void;
  /**
   * Called when `work` fails (the message is put back after `retryDelayMs`), when a message is
   * poison, or when an ack or nack fails (the channel closed: RabbitMQ redelivers the message to
   * the next consumer, and the inbox makes that a no-op if it had been processed).
   */
  onError?: (err: unknown, msg: AmqpMessageLike) => void;
}

/**
 * Consumes a queue with manual acks through the inbox: each message's effects and its inbox row
 * commit in one transaction, and the message is acked only after that commit. A crash before the
 * ack redelivers it, and the inbox turns the repeat into a no-op (then acks).
 *
 * A message that can never succeed — no usable `messageId` (it cannot be de-duplicated) or a body
 * that is not JSON — is rejected without requeue, to the queue's dead-letter exchange, and reported to
 * `onPoison`; requeueing it would loop forever. A failure of `work` is taken as transient: the
 * message is put back after `retryDelayMs`. Nothing here throws out of the message callback, so a
 * closed channel cannot crash the process with an unhandled rejection.
 */
export async function consumeOnce<Tx>(channel: AmqpChannelLike, queue: string, options: AmqpConsumerOptions<Tx>, work: (tx: Tx, event: AmqpEvent) => Promise<void>): Promise<{ consumerTag: string }> {
  const prefetch = options.prefetch === undefined ? 16 : options.prefetch;
  if (prefetch !== null && channel.prefetch) await channel.prefetch(prefetch);
  const report = (err: unknown, msg: AmqpMessageLike) => {
    try {
      options.onError?.(err, msg);
    } catch {
      // A failing error callback must not take the consumer down.
    }
  };
  // amqplib throws from ack/nack once the channel is closed; the broker then redelivers anyway.
  const settle = (msg: AmqpMessageLike, how: 'ack' | 'requeue' | 'dead-letter') => {
    try {
      if (how === 'ack') channel.ack(msg);
      else channel.nack(msg, false, how === 'requeue');
    } catch (err) {
      report(err, msg);
    }
  };
  const poison = (reason: PoisonReason, err: Error, msg: AmqpMessageLike) => {
    report(err, msg);
    try {
      options.onPoison?.(reason, msg);
    } catch (callbackError) {
      report(callbackError, msg);
    }
    settle(msg, 'dead-letter');
  };
  return channel.consume(
    queue,
    (msg) => {
      if (!msg) return;
      const id = msg.properties.messageId;
      if (!id) return poison('no-message-id', new Error('message has no messageId'), msg);
      if (!CONSUMER_ID.test(id)) return poison('invalid-message-id', new Error(`messageId ${JSON.stringify(id.slice(0, 140))} is not a Herald message id`), msg);
      let payload: unknown;
      try {
        payload = JSON.parse(msg.content.toString('utf8'));
      } catch (err) {
        return poison('invalid-json', new Error(`message ${id} body is not JSON`, { cause: err }), msg);
      }
      const headers = msg.properties.headers ?? {};
      const event: AmqpEvent = {
        id,
        tenant: typeof headers['herald-tenant'] === 'string' ? headers['herald-tenant'] : 'default',
        topic: typeof headers['herald-topic'] === 'string' ? headers['herald-topic'] : msg.fields.routingKey,
        key: typeof headers['herald-key'] === 'string' ? headers['herald-key'] : null,
        payload,
        redelivered: msg.fields.redelivered,
      };
      void (async () => {
        let outcome;
        try {
          outcome = await processOnce(options, id, (tx) => work(tx, event));
        } catch (err) {
          report(err, msg);
          await new Promise((resolve) => setTimeout(resolve, options.retryDelayMs ?? 1_000));
          return settle(msg, 'requeue');
        }
        if (outcome.duplicate) {
          try {
            options.onDuplicate?.(event);
          } catch (err) {
            report(err, msg);
          }
        }
        settle(msg, 'ack');
      })();
    },
    { noAck: false },
  );
}
