import { parseCheckAnswer, type CheckAnswer } from '@herald/domain';
import type { CheckJobRef, CheckOutcome, DeliveryJobRef, MessageRepository } from '@herald/db';
import type { WebhookSender } from '@herald/delivery';

export interface CheckProcessorDeps {
  messages: MessageRepository;
  sender: WebhookSender;
  /** The whsec_ secret check calls are signed with (HERALD_CHECK_SECRET). */
  secret: string;
  timeoutMs: number;
  scheduleDeliveries: (jobs: readonly DeliveryJobRef[], messageId: string) => Promise<void>;
  onCheck?: (answer: CheckAnswer, durationMs: number) => void;
}

/** A producer's answer may be a little JSON, never a document. */
const ANSWER_MAX_BYTES = 16_384;

/**
 * Makes one check-back call: POST { id, topic, key, check } to the message's checkUrl, signed
 * like a webhook (Standard Webhooks headers) plus `herald-message-id`, then records the answer.
 * A job for a round that is over (the message was decided, or checked again) calls nobody.
 */
export class CheckProcessor {
  constructor(private readonly deps: CheckProcessorDeps) {}

  async process(ref: CheckJobRef): Promise<CheckOutcome | 'skipped'> {
    const message = await this.deps.messages.findById(ref.messageId);
    if (!message || message.status !== 'prepared' || message.checks !== ref.check - 1 || !message.checkUrl) return 'skipped';

    const startedAt = new Date();
    const result = await this.deps.sender.send({
      url: message.checkUrl,
      // Standard Webhooks ids name one call: verifiers that refuse replays must not refuse check 2.
      messageId: `${message.id}:check:${ref.check}`,
      topic: message.topic,
      key: message.key,
      attempt: ref.check,
      body: JSON.stringify({ id: message.id, topic: message.topic, key: message.key, check: ref.check }),
      headers: { 'herald-message-id': message.id },
      secrets: [this.deps.secret],
      timeoutMs: this.deps.timeoutMs,
      responseBytes: ANSWER_MAX_BYTES,
    });
    const { answer, reason } = result.statusCode === undefined ? { answer: 'unknown' as const, reason: result.error } : parseCheckAnswer(result.statusCode, result.responseExcerpt);
    this.deps.onCheck?.(answer, result.durationMs);
    const outcome = await this.deps.messages.recordCheck(ref, {
      startedAt,
      durationMs: result.durationMs,
      answer,
      statusCode: result.statusCode ?? null,
      error: reason ?? null,
    });
    if (outcome.kind === 'confirmed') await this.deps.scheduleDeliveries(outcome.jobs, message.id);
    return outcome;
  }
}
