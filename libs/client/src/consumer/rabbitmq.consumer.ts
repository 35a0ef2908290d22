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
}

/** One message from Herald on RabbitMQ. */
export interface AmqpEvent {
  /** AMQP `messageId`: the Herald message id. */
  id: string;
  topic: string;
  key: string | null;
  payload: unknown;
  redelivered: boolean;
}

/** Options of {@link consumeOnce}. */
export interface AmqpConsumerOptions<Tx> extends InboxOptions<Tx> {
  /** Wait before a failed message is put back, so a persistent failure does not spin (default 1 s). */
  retryDelayMs?: number;
  /** Called when a message id was already processed (the message is acked and nothing runs). */
  onDuplicate?: (event: AmqpEvent) => void;
  /** Called when a message fails or is refused; the message has been requeued or dropped. */
  onError?: (err: unknown, msg: AmqpMessageLike) => void;
}

/**
 * Consumes a queue with manual acks through the inbox: each message's effects and its inbox row
 * commit in one transaction, and the message is acked only after that commit. A crash before the
 * ack redelivers it, and the inbox turns the repeat into a no-op (then acks). A message without a
 * `messageId` cannot be de-duplicated and is rejected without requeue (to your dead-letter
 * exchange, if the queue has one).
 */
export async function consumeOnce<Tx>(channel: AmqpChannelLike, queue: string, options: AmqpConsumerOptions<Tx>, work: (tx: Tx, event: AmqpEvent) => Promise<void>): Promise<{ consumerTag: string }> {
  return channel.consume(
    queue,
    (msg) => {
      if (!msg) return;
      const id = msg.properties.messageId;
      if (!id) {
        options.onError?.(new Error('message has no messageId'), msg);
        return channel.nack(msg, false, false);
      }
      const headers = msg.properties.headers ?? {};
      void (async () => {
        try {
          const event: AmqpEvent = {
            id,
            topic: typeof headers['herald-topic'] === 'string' ? headers['herald-topic'] : msg.fields.routingKey,
            key: typeof headers['herald-key'] === 'string' ? headers['herald-key'] : null,
            payload: JSON.parse(msg.content.toString('utf8')),
            redelivered: msg.fields.redelivered,
          };
          const outcome = await processOnce(options, id, (tx) => work(tx, event));
          if (outcome.duplicate) options.onDuplicate?.(event);
          channel.ack(msg);
        } catch (err) {
          options.onError?.(err, msg);
          await new Promise((resolve) => setTimeout(resolve, options.retryDelayMs ?? 1_000));
          channel.nack(msg, false, true);
        }
      })();
    },
    { noAck: false },
  );
}
