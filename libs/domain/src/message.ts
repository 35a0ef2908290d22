import type { ChecksExhaustedPolicy } from './check-policy';
import type { MessageStatus } from './message-status';

/** A message as stored: the producer's content, its check-back schedule and its lifecycle. */
export interface StoredMessage {
  /** The team the message belongs to (the tenant of the key that prepared it). */
  tenant: string;
  id: string;
  topic: string;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  status: MessageStatus;
  checkUrl: string | null;
  checkAfterMs: number;
  checkIntervalMs: number;
  maxChecks: number;
  onChecksExhausted: ChecksExhaustedPolicy;
  delayMs: number;
  checks: number;
  nextCheckAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  confirmedAt: Date | null;
  cancelledAt: Date | null;
  /**
   * The W3C traceparent of the span that stored the message, so later work (checks, deliveries)
   * joins its trace. Opaque here, never part of the API answer; absent or null without tracing.
   */
  traceParent?: string | null;
}

/** What a producer asks for when it prepares (or directly publishes) a message. */
export interface PrepareRequest {
  id?: string;
  topic: string;
  payload: unknown;
  key?: string;
  headers?: Record<string, string>;
  checkUrl?: string;
  checkAfterMs?: number;
  checkIntervalMs?: number;
  maxChecks?: number;
  onChecksExhausted?: ChecksExhaustedPolicy;
  delayMs?: number;
  confirm?: boolean;
}

/**
 * The part of a prepare request that decides whether a retry with the same id is "the same
 * message" (200) or a different one (409): everything the producer sent except the id.
 */
export function idempotencyContent(request: PrepareRequest): Omit<PrepareRequest, 'id'> {
  const { id: _id, headers, confirm, ...content } = request;
  // Spellings of "nothing" count as nothing: {} headers, confirm: false.
  return {
    ...content,
    ...(headers && Object.keys(headers).length > 0 && { headers }),
    ...(confirm === true && { confirm }),
  };
}
