import { randomUUID } from 'node:crypto';
import { activeSecrets, type AttemptResult, type TargetType } from '@herald/domain';
import type { AttemptContext, DeliveryJobRef, DeliveryRepository, SubscriptionRepository } from '@herald/db';
import type { RabbitPublisher, WebhookSender } from '@herald/delivery';
import type { DeliveryScheduler } from './delivery.scheduler';

export interface DeliverProcessorDeps {
  deliveries: DeliveryRepository;
  subscriptions: SubscriptionRepository;
  webhook: WebhookSender;
  rabbit: RabbitPublisher;
  scheduler: DeliveryScheduler;
  /** Webhook timeout when the subscription sets none. */
  defaultTimeoutMs: number;
  /** The RabbitMQ publisher's confirm timeout. */
  rabbitConfirmTimeoutMs: number;
  onAttempt?: (target: TargetType, result: AttemptResult) => void;
  onFinished?: (target: TargetType, status: 'delivered' | 'dead') => void;
  log?: { warn: (obj: object, msg: string) => void };
}

export type ProcessResult = 'delivered' | 'retry' | 'dead' | 'skipped';

const LEASE_MARGIN_MS = 5_000;

/**
 * Makes one attempt of one delivery. Idempotent: the claim (a conditional UPDATE on the row's
 * generation, attempt count and lease) lets exactly one holder of a job send, and a duplicate,
 * stale or already-finished job does nothing.
 */
export class DeliverProcessor {
  constructor(private readonly deps: DeliverProcessorDeps) {}

  async process(ref: DeliveryJobRef): Promise<ProcessResult> {
    const { deliveries } = this.deps;
    const context = await deliveries.loadContext(ref.deliveryId);
    const row = context?.delivery;
    // Cheap early exit for duplicates and stale jobs; the claim below is what guarantees it.
    if (!context || !row || row.status !== 'pending' || row.generation !== ref.generation || row.attempts !== ref.attempt) return 'skipped';

    const target = row.targetType as TargetType;
    const sub = context.subscription;
    const timeoutMs = sub?.target.type === 'webhook' ? sub.target.timeoutMs ?? this.deps.defaultTimeoutMs : this.deps.rabbitConfirmTimeoutMs;
    // The lease outlives the send's own timeout, so it is never taken from a live sender, and
    // expires soon after, so a killed sender's delivery is retried promptly.
    if (!(await deliveries.claim(ref, timeoutMs + LEASE_MARGIN_MS))) return 'skipped';

    if (!sub || !sub.enabled) {
      const reason = !sub ? 'subscription was deleted' : `subscription is disabled${sub.disabledReason ? `: ${sub.disabledReason}` : ''}`;
      if (await deliveries.markDead(ref, context.message.id, reason)) this.deps.onFinished?.(target, 'dead');
      return 'dead';
    }

    const startedAt = new Date();
    const result = await this.send(context, ref);
    this.deps.onAttempt?.(target, result);
    const outcome = await deliveries.recordAttempt(ref, context, result, startedAt);
    if (result.gone) await this.deps.subscriptions.disable(sub.id, `endpoint answered 410 Gone at ${startedAt.toISOString()}`);

    switch (outcome.kind) {
      case 'retry':
        await this.deps.scheduler.schedule([outcome.job]).catch((err: Error) => {
          // MySQL already has the next attempt; the reconciler will enqueue it.
          this.deps.log?.warn({ messageId: context.message.id, deliveryId: ref.deliveryId, err: { message: err.message } }, 'could not enqueue the next attempt');
        });
        return 'retry';
      case 'delivered':
      case 'dead':
        this.deps.onFinished?.(target, outcome.kind);
        return outcome.kind;
      default:
        return 'skipped';
    }
  }

  private send(context: AttemptContext, ref: DeliveryJobRef): Promise<AttemptResult> {
    const { message, subscription } = context;
    const sub = subscription as NonNullable<AttemptContext['subscription']>;
    const body = JSON.stringify(message.payload);
    const attempt = ref.attempt + 1;
    if (sub.target.type === 'webhook') {
      return this.deps.webhook.send({
        url: sub.target.url,
        messageId: message.id,
        topic: message.topic,
        key: message.key,
        attempt,
        body,
        headers: { ...message.headers, ...sub.target.headers },
        secrets: activeSecrets(sub, new Date()),
        timeoutMs: sub.target.timeoutMs ?? this.deps.defaultTimeoutMs,
      });
    }
    return this.deps.rabbit.publish({
      exchange: sub.target.exchange,
      routingKey: sub.target.routingKey ?? message.topic,
      messageId: message.id,
      body,
      headers: {
        ...message.headers,
        'herald-topic': message.topic,
        'herald-attempt': String(attempt),
        ...(message.key !== null && { 'herald-key': message.key }),
      },
      publishId: `${ref.deliveryId}.${ref.generation}.${attempt}.${randomUUID()}`,
    });
  }
}
