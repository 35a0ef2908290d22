import { randomUUID } from 'node:crypto';
import type { Span, Tracer } from '@opentelemetry/api';
import { activeSecrets, type AttemptResult, type Subscription, type TargetType } from '@herald/domain';
import type { AttemptContext, AttemptOutcome, DeliveryJobRef, DeliveryRepository, SubscriptionRepository } from '@herald/db';
import { mergeHeaders, traceHeaders, withTraceHeaders, type RabbitPublisher, type WebhookSender } from '@herald/delivery';
import type { DeliveryScheduler } from './delivery.scheduler';
import { endSpan, SpanKind, startMessageSpan, traceFields, type QueueLog } from './observability';

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
  log?: QueueLog;
  /** With tracing on: each attempt is a span in the message's trace, and its context is sent on. */
  tracer?: Tracer;
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
    // Duplicate, stale and already-finished jobs get no context: the claim is conditional on the row.
    const context = await deliveries.claimWithContext(ref, (c) => this.leaseMs(c.subscription));
    if (!context) return 'skipped';
    return this.attempt(ref, context);
  }

  /**
   * Makes the first attempt of a delivery leased to this process by the transaction that created
   * it (see `InlineDispatcher.runClaimed`), with the context that transaction built. That lease
   * was measured from the transaction's start: if the commit came so late that what is left would
   * not cover the send (a lock wait, a slow fsync, a wait for a connection), the send would still
   * be under way when the lease ran out and another worker could claim and send the same attempt.
   * Then the delivery is claimed again first, with its context read afresh (a subscription
   * disabled, deleted or changed while the transaction waited is seen, as by any claim) — unless
   * another worker took it meanwhile.
   */
  async attemptLeased(ref: DeliveryJobRef, context: AttemptContext): Promise<ProcessResult> {
    const heldUntil = context.delivery.leaseUntil;
    const leftMs = (heldUntil?.getTime() ?? 0) - Date.now();
    if (leftMs >= this.leaseMs(context.subscription) - LEASE_MARGIN_MS / 2) return this.attempt(ref, context);
    const renewed = await this.deps.deliveries.renewClaimWithContext(ref, heldUntil, (c) => this.leaseMs(c.subscription));
    return renewed ? this.attempt(ref, renewed) : 'skipped';
  }

  /**
   * Makes the attempt of a delivery this process holds a lease on long enough for the send:
   * claimed by `process`, or by `attemptLeased`.
   */
  async attempt(ref: DeliveryJobRef, context: AttemptContext): Promise<ProcessResult> {
    const { deliveries } = this.deps;
    const row = context.delivery;
    const target = row.targetType as TargetType;
    const sub = context.subscription;

    // Made only when a line is written: most attempts log nothing at the default level, and a
    // child logger per delivery was a measurable share of the hot path's CPU and garbage.
    const log = once(() => this.deps.log?.child({ messageId: context.message.id, deliveryId: ref.deliveryId, subscriptionId: row.subscriptionId, attempt: ref.attempt + 1 }));
    if (!sub || !sub.enabled) {
      const reason = !sub ? 'subscription was deleted' : `subscription is disabled${sub.disabledReason ? `: ${sub.disabledReason}` : ''}`;
      if (await deliveries.markDead(ref, context.message.id, reason)) {
        this.deps.onFinished?.(target, 'dead');
        log()?.warn({ target, reason }, 'delivery is dead without an attempt');
      }
      return 'dead';
    }

    const startedAt = new Date();
    const span = this.startSpan(context, ref);
    const attemptLog = once(() => (span ? log()?.child(traceFields(span)) : log()));
    let result: AttemptResult | undefined;
    let outcome: AttemptOutcome | undefined;
    try {
      result = await this.send(context, ref, traceHeaders(span));
      this.deps.onAttempt?.(target, result);
      outcome = await deliveries.recordAttempt(ref, context, result, startedAt);
    } finally {
      endSpan(
        span,
        result?.ok ?? false,
        { 'herald.outcome': outcome?.kind ?? 'error', ...(result?.statusCode !== undefined && { 'http.response.status_code': result.statusCode }) },
        result ? result.error : 'recording the attempt failed',
      );
    }
    if (result.gone) await this.deps.subscriptions.disable(sub.id, `endpoint answered 410 Gone at ${startedAt.toISOString()}`);

    const seen = { target, statusCode: result.statusCode, durationMs: Math.round(result.durationMs) };
    switch (outcome.kind) {
      case 'retry':
        attemptLog()?.info({ ...seen, error: result.error, nextAttemptAt: outcome.job.runAt.toISOString() }, 'delivery attempt failed; retrying later');
        await this.deps.scheduler.schedule([outcome.job]).catch((err: Error) => {
          // MySQL already has the next attempt; the reconciler will enqueue it.
          attemptLog()?.warn({ err: { message: err.message } }, 'could not enqueue the next attempt');
        });
        return 'retry';
      case 'delivered':
      case 'dead':
        this.deps.onFinished?.(target, outcome.kind);
        if (outcome.kind === 'dead') attemptLog()?.warn({ ...seen, reason: outcome.reason }, 'delivery is dead');
        else if (this.deps.log?.isLevelEnabled?.('debug') !== false) attemptLog()?.debug(seen, 'delivered');
        return outcome.kind;
      default:
        attemptLog()?.debug(seen, 'attempt not recorded: the delivery was replayed or finished meanwhile');
        return 'skipped';
    }
  }

  /**
   * How long a lease on a delivery to `subscription` lasts: it outlives the send's own timeout, so
   * it is never taken from a live sender, and expires soon after, so a killed sender's delivery
   * is retried promptly.
   */
  leaseMs(subscription: Pick<Subscription, 'target'> | undefined): number {
    const target = subscription?.target;
    return (target?.type === 'webhook' ? target.timeoutMs ?? this.deps.defaultTimeoutMs : this.deps.rabbitConfirmTimeoutMs) + LEASE_MARGIN_MS;
  }

  /** A span per attempt in the message's trace (none with tracing off). No URL: it may carry a token. */
  private startSpan(context: AttemptContext, ref: DeliveryJobRef): Span | undefined {
    if (!this.deps.tracer) return undefined;
    const { message } = context;
    const sub = context.subscription as NonNullable<AttemptContext['subscription']>;
    const common = { 'herald.message.id': message.id, 'herald.delivery.id': ref.deliveryId, 'herald.subscription.id': sub.id, 'herald.attempt': ref.attempt + 1 };
    if (sub.target.type === 'webhook') {
      const url = parseUrl(sub.target.url);
      return startMessageSpan(this.deps.tracer, 'deliver webhook', SpanKind.CLIENT, message.traceParent, {
        ...common,
        'http.request.method': 'POST',
        ...(url && { 'server.address': url.hostname, 'url.scheme': url.protocol.replace(':', '') }),
      });
    }
    return startMessageSpan(this.deps.tracer, 'deliver rabbitmq', SpanKind.PRODUCER, message.traceParent, {
      ...common,
      'messaging.system': 'rabbitmq',
      'messaging.operation.type': 'send',
      'messaging.destination.name': sub.target.exchange,
      'messaging.rabbitmq.destination.routing_key': sub.target.routingKey ?? message.topic,
      'messaging.message.id': message.id,
    });
  }

  private send(context: AttemptContext, ref: DeliveryJobRef, trace: Record<string, string>): Promise<AttemptResult> {
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
        // With tracing on the trace headers point at this attempt's span, replacing any the message or subscription carries.
        headers: withTraceHeaders(mergeHeaders(message.headers, sub.target.headers), trace),
        secrets: activeSecrets(sub, new Date()),
        timeoutMs: sub.target.timeoutMs ?? this.deps.defaultTimeoutMs,
      });
    }
    return this.deps.rabbit.publish({
      exchange: sub.target.exchange,
      routingKey: sub.target.routingKey ?? message.topic,
      messageId: message.id,
      body,
      headers: withTraceHeaders(
        {
          ...message.headers,
          'herald-topic': message.topic,
          'herald-attempt': String(attempt),
          ...(message.key !== null && { 'herald-key': message.key }),
        },
        trace,
      ),
      publishId: `${ref.deliveryId}.${ref.generation}.${attempt}.${randomUUID()}`,
    });
  }
}

/** `make`'s value, made on the first call only. */
function once<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => (made ??= { value: make() }).value;
}

function parseUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}
