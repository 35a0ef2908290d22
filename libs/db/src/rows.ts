import { createHash } from 'node:crypto';
import {
  canonicalJson,
  idempotencyContent,
  type CheckAnswer,
  type DeliveryStatus,
  type MessageStatus,
  type PrepareRequest,
  type SigningSecrets,
  type StoredMessage,
  type Subscription,
  type TargetType,
} from '@herald/domain';
import type { CheckAttemptRow, MessageRow } from './schema/messages';
import type { DeliveryAttemptRow, DeliveryRow } from './schema/deliveries';

/** A message row before MySQL gave it its `seq`. */
export type NewMessageRow = Omit<MessageRow, 'seq'>;

/** A message's id within its tenant: ids are unique per tenant only. */
export interface MessageRef {
  tenant: string;
  id: string;
}

/** One string per (tenant, id), for maps: a tenant name never contains a newline. */
export function refKey(ref: MessageRef): string {
  return `${ref.tenant}\n${ref.id}`;
}

/** A delivery as the API shows it. */
export interface DeliverySummary {
  id: number;
  subscriptionId: string;
  targetType: TargetType;
  status: DeliveryStatus;
  attempts: number;
  lastError: string | null;
  lastStatusCode: number | null;
  nextAttemptAt: Date | null;
  deliveredAt: Date | null;
  deadAt: Date | null;
  /** A person skipped this dead delivery of an ordered subscription, releasing its key. */
  skippedAt: Date | null;
}

export interface AttemptRecord {
  generation: number;
  attempt: number;
  startedAt: Date;
  durationMs: number;
  ok: boolean;
  statusCode: number | null;
  error: string | null;
  responseExcerpt: string | null;
}

export interface CheckAttemptRecord {
  check: number;
  at: Date;
  durationMs: number;
  answer: CheckAnswer;
  statusCode: number | null;
  error: string | null;
}

/** Everything one attempt needs, read once. `subscription` is undefined if it was deleted. */
export interface AttemptContext {
  delivery: DeliveryRow;
  message: StoredMessage;
  subscription?: Subscription & SigningSecrets;
}

/** Stored error texts are cut to their column's size. */
export const ERROR_MAX = 1000;

export function contentHash(request: PrepareRequest): string {
  return createHash('sha256').update(canonicalJson(idempotencyContent(request))).digest('hex');
}

/** The columns of a message leaving `prepared` for `to`, whoever decided: no further check, and the decision's time. */
export function decidedColumns(to: MessageStatus, now: Date): Partial<MessageRow> {
  return {
    status: to,
    nextCheckAt: null,
    updatedAt: now,
    ...(to === 'confirmed' && { confirmedAt: now }),
    ...(to === 'cancelled' && { cancelledAt: now }),
  };
}

export function toMessage(row: MessageRow | NewMessageRow): StoredMessage {
  return {
    tenant: row.tenant,
    id: row.id,
    topic: row.topic,
    key: row.key,
    payload: JSON.parse(row.payload),
    headers: JSON.parse(row.headers) as Record<string, string>,
    status: row.status as MessageStatus,
    checkUrl: row.checkUrl,
    checkAfterMs: row.checkAfterMs,
    checkIntervalMs: row.checkIntervalMs,
    maxChecks: row.maxChecks,
    onChecksExhausted: row.onChecksExhausted as StoredMessage['onChecksExhausted'],
    delayMs: row.delayMs,
    checks: row.checks,
    nextCheckAt: row.nextCheckAt,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    confirmedAt: row.confirmedAt,
    cancelledAt: row.cancelledAt,
    traceParent: row.traceParent,
  };
}

export function toDeliverySummary(row: Pick<DeliveryRow, 'id' | 'subscriptionId' | 'targetType' | 'status' | 'attempts' | 'lastError' | 'lastStatusCode' | 'nextAttemptAt' | 'deliveredAt' | 'deadAt' | 'skippedAt'>): DeliverySummary {
  return {
    id: row.id,
    subscriptionId: row.subscriptionId,
    targetType: row.targetType as TargetType,
    status: row.status as DeliveryStatus,
    attempts: row.attempts,
    lastError: row.lastError,
    lastStatusCode: row.lastStatusCode,
    nextAttemptAt: row.nextAttemptAt,
    deliveredAt: row.deliveredAt,
    deadAt: row.deadAt,
    skippedAt: row.skippedAt,
  };
}

export function toAttemptRecord(row: DeliveryAttemptRow): AttemptRecord {
  return {
    generation: row.generation,
    attempt: row.attempt,
    startedAt: row.startedAt,
    durationMs: row.durationMs,
    ok: row.ok,
    statusCode: row.statusCode,
    error: row.error,
    responseExcerpt: row.responseExcerpt,
  };
}

export function toCheckAttemptRecord(r: CheckAttemptRow): CheckAttemptRecord {
  return { check: r.checkNo, at: r.startedAt, durationMs: r.durationMs, answer: r.answer as CheckAnswer, statusCode: r.statusCode, error: r.error };
}
