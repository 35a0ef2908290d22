import type { Tracer } from '@opentelemetry/api';
import { CHECK_ANSWER_MAX_BYTES, parseCheckAnswer, type AttemptResult, type CheckAnswer, type CheckJobRef } from '@herald/domain';
import type { CheckOutcome, CheckRepository, MessageRepository } from '@herald/db';
import { traceHeaders, type WebhookSender } from '@herald/delivery';
import type { DeliveryDispatcher } from './delivery.dispatcher';
import { endSpan, SpanKind, startMessageSpan, traceFields, type QueueLog } from './observability';

export interface CheckProcessorDeps {
  messages: Pick<MessageRepository, 'findBySeq'>;
  checks: Pick<CheckRepository, 'record'>;
  sender: WebhookSender;
  /** The whsec_ secret a tenant's check calls are signed with: its own if its keys set one, else HERALD_CHECK_SECRET. */
  secretFor: (tenant: string) => string;
  timeoutMs: number;
  dispatcher: Pick<DeliveryDispatcher, 'dispatch'>;
  onCheck?: (answer: CheckAnswer, durationMs: number, tenant: string) => void;
  log?: QueueLog;
  /** With tracing on: each call is a span in the message's trace, and its context is sent on. */
  tracer?: Tracer;
}

/**
 * Makes one check-back call: POST { id, topic, key, check } to the message's checkUrl, signed
 * like a webhook (Standard Webhooks headers) plus `herald-message-id`, then records the answer.
 * A job for a round that is over (the message was decided, or checked again) calls nobody.
 */
export class CheckProcessor {
  constructor(private readonly deps: CheckProcessorDeps) {}

  async process(ref: CheckJobRef): Promise<CheckOutcome | 'skipped'> {
    const message = await this.deps.messages.findBySeq(ref.seq);
    if (!message || message.status !== 'prepared' || message.checks !== ref.check - 1 || !message.checkUrl) return 'skipped';

    const startedAt = new Date();
    const span = startMessageSpan(this.deps.tracer, 'check', SpanKind.CLIENT, message.traceParent, {
      'herald.message.id': message.id,
      'herald.check': ref.check,
      'http.request.method': 'POST',
    });
    const log = this.deps.log?.child({ messageId: message.id, check: ref.check, ...traceFields(span) });
    let result: AttemptResult | undefined;
    let answer: CheckAnswer | undefined;
    let outcome: CheckOutcome | undefined;
    try {
      result = await this.deps.sender.send({
        url: message.checkUrl,
        // Standard Webhooks ids name one call: verifiers that refuse replays must not refuse check 2.
        messageId: `${message.id}:check:${ref.check}`,
        topic: message.topic,
        key: message.key,
        attempt: ref.check,
        body: JSON.stringify({ id: message.id, topic: message.topic, key: message.key, check: ref.check }),
        tenant: message.tenant,
        headers: { 'herald-message-id': message.id, ...traceHeaders(span) },
        secrets: [this.deps.secretFor(message.tenant)],
        timeoutMs: this.deps.timeoutMs,
        // One byte more than an answer may have, so a longer one is seen as too large.
        responseBytes: CHECK_ANSWER_MAX_BYTES + 1,
      });
      const parsed = result.statusCode === undefined ? { answer: 'unknown' as const, reason: result.error } : parseCheckAnswer(result.statusCode, result.responseExcerpt);
      answer = parsed.answer;
      this.deps.onCheck?.(answer, result.durationMs, message.tenant);
      outcome = await this.deps.checks.record(ref, {
        startedAt,
        durationMs: result.durationMs,
        answer,
        statusCode: result.statusCode ?? null,
        error: parsed.reason ?? null,
      });
      const seen = { answer, statusCode: result.statusCode, durationMs: Math.round(result.durationMs) };
      if (answer === 'unknown') log?.info({ ...seen, reason: parsed.reason, outcome: outcome.kind }, 'check answered unknown');
      else log?.debug({ ...seen, outcome: outcome.kind }, 'check answered');
      if (outcome.kind === 'held') log?.warn({ checks: ref.check }, 'checks exhausted: the message is unresolved until a person confirms or cancels it');
    } finally {
      endSpan(
        span,
        answer !== undefined && answer !== 'unknown',
        { 'herald.check.answer': answer ?? 'error', 'herald.outcome': outcome?.kind ?? 'error', ...(result?.statusCode !== undefined && { 'http.response.status_code': result.statusCode }) },
        answer === undefined ? 'recording the check failed' : answer === 'unknown' ? 'the producer did not answer commit or rollback' : undefined,
      );
    }
    if (outcome.kind === 'confirmed') await this.deps.dispatcher.dispatch(outcome, message.id);
    return outcome;
  }
}
