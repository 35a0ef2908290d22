import { randomUUID } from 'node:crypto';
import type { Span, Tracer } from '@opentelemetry/api';
import { activeSecrets, consumerMessageId, deliveryLeaseMs, LEASE_MARGIN_MS, type AttemptResult, type DeliveryJobRef, type SendTimeouts, type TargetType } from '@herald/domain';
import type { AttemptContext, AttemptOutcome, AttemptRepository, ClaimRepository, SubscriptionRepository } from '@herald/db';
import { mergeHeaders, traceHeaders, withTraceHeaders, type RabbitPublisher, type WebhookSender } from '@herald/delivery';
import { endSpan, SpanKind, startMessageSpan, traceFields, type QueueLog } from './observability';

export interface DeliverProcessorDeps {
  claims: ClaimRepository;
  attempts: AttemptRepository;
  subscriptions: SubscriptionRepository;
  webhook: WebhookSender;
  rabbit: RabbitPublisher;
  /** The webhook timeout when a subscription sets none, and the RabbitMQ confirm timeout. */
  timeouts: SendTimeouts;
  onAttempt?: (target: TargetType, result: AttemptResult) => void;
  /** With the tenant of the delivery's message, for per-tenant metrics. */
  onFinished?: (target: TargetType, status: 'delivered' | 'dead', tenant: string) => void;
  log?: QueueLog;
  /** With tracing on: each attempt is a span in the message's trace, and its context is sent on. */
  tracer?: Tracer;
}

/**
 * What an attempt came to, for the dispatcher to schedule: a retry names the next attempt;
 * `woken` is the next delivery of an ordered key, due now that this one is settled.
 */
export type ProcessResult = { kind: 'delivered' | 'dead' | 'skipped'; woken?: DeliveryJobRef } | { kind: 'retry'; next: DeliveryJobRef };

const SKIPPED: ProcessResult = { kind: 'skipped' };

/**
 * Makes one attempt of one delivery. Idempotent: the claim (a conditional UPDATE on the row's
 * generation, attempt count and lease) lets exactly one holder of a job send, and a duplicate,
 * stale or already-finished job does nothing. It schedules nothing: the dispatcher does.
 */
export class DeliverProcessor {
  constructor(private readonly deps: DeliverProcessorDeps) {}

  async process(ref: DeliveryJobRef): Promise<ProcessResult> {
    // Duplicate, stale and already-finished jobs get no context: the claim is conditional on the row.
    const context = await this.deps.claims.claimWithContext(ref, (c) => this.leaseMs(c));
    if (!context) return SKIPPED;
    return this.attempt(ref, context);
  }

  /**
   * Makes the first attempt of a delivery leased to this process by the transaction that created
   * it, with the context that transaction built. If the commit came so late that the rest of the
   * lease would not cover the send, the delivery is claimed afresh first (its context read again),
   * unless another worker took it meanwhile.
   */
  async attemptLeased(ref: DeliveryJobRef, context: AttemptContext): Promise<ProcessResult> {
    const heldUntil = context.delivery.leaseUntil;
    const leftMs = (heldUntil?.getTime() ?? 0) - Date.now();
    if (leftMs >= this.leaseMs(context) - LEASE_MARGIN_MS / 2) return this.attempt(ref, context);
    const renewed = await this.deps.claims.renewClaimWithContext(ref, heldUntil, (c) => this.leaseMs(c));
    return renewed ? this.attempt(ref, renewed) : SKIPPED;
  }

  /**
   * Makes the attempt of a delivery this process holds a lease on long enough for the send:
   * claimed by `process`, or by `attemptLeased`.
   */
  async attempt(ref: DeliveryJobRef, context: AttemptContext): Promise<ProcessResult> {
    const { attempts } = this.deps;
    const row = context.delivery;
    const target = row.targetType as TargetType;
    const sub = context.subscription;

    // Made only when a line is written: most attempts log nothing at the default level, and a
    // child logger per delivery was a measurable share of the hot path's CPU and garbage.
    const log = once(() => this.deps.log?.child({ messageId: context.message.id, deliveryId: ref.deliveryId, subscriptionId: row.subscriptionId, attempt: ref.attempt + 1 }));
    if (!sub || !sub.enabled) {
      const reason = !sub ? 'subscription was deleted' : `subscription is disabled${sub.disabledReason ? `: ${sub.disabledReason}` : ''}`;
      // A deleted subscription never sends again: its ordered keys move on instead of blocking.
      const { marked, woken } = await attempts.markDead(ref, row, reason, !sub);
      if (marked) {
        this.deps.onFinished?.(target, 'dead', context.message.tenant);
        log()?.warn({ target, reason }, 'delivery is dead without an attempt');
      }
      return { kind: 'dead', woken };
    }

    const startedAt = new Date();
    const span = this.startSpan(context, ref);
    const attemptLog = once(() => (span ? log()?.child(traceFields(span)) : log()));
    let result: AttemptResult | undefined;
    let outcome: AttemptOutcome | undefined;
    try {
      result = await this.send(context, ref, traceHeaders(span));
      this.deps.onAttempt?.(target, result);
      outcome = await attempts.record(ref, context, result, startedAt);
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
        return { kind: 'retry', next: outcome.job };
      case 'delivered':
      case 'dead':
        this.deps.onFinished?.(target, outcome.kind, context.message.tenant);
        if (outcome.kind === 'dead') attemptLog()?.warn({ ...seen, reason: outcome.reason }, 'delivery is dead');
        else if (this.deps.log?.isLevelEnabled?.('debug') !== false) attemptLog()?.debug(seen, 'delivered');
        return outcome.kind === 'delivered' && outcome.woken ? { kind: 'delivered', woken: outcome.woken } : { kind: outcome.kind };
      default:
        attemptLog()?.debug(seen, 'attempt not recorded: the delivery was replayed or finished meanwhile');
        return SKIPPED;
    }
  }

  private leaseMs(context: AttemptContext): number {
    return deliveryLeaseMs(context.subscription?.target, this.deps.timeouts);
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
        // Unique across tenants, so a consumer of several tenants' messages de-duplicates correctly.
        messageId: consumerMessageId(message.tenant, message.id),
        tenant: message.tenant,
        topic: message.topic,
        key: message.key,
        attempt,
        body,
        // With tracing on the trace headers point at this attempt's span, replacing any the message or subscription carries.
        headers: withTraceHeaders(mergeHeaders(message.headers, sub.target.headers), trace),
        secrets: activeSecrets(sub, new Date()),
        timeoutMs: sub.target.timeoutMs ?? this.deps.timeouts.webhookTimeoutMs,
      });
    }
    return this.deps.rabbit.publish({
      exchange: sub.target.exchange,
      routingKey: sub.target.routingKey ?? message.topic,
      messageId: consumerMessageId(message.tenant, message.id),
      body,
      headers: withTraceHeaders(
        {
          ...message.headers,
          'herald-topic': message.topic,
          'herald-attempt': String(attempt),
          'herald-tenant': message.tenant,
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
