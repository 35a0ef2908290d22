import type { MessageRow } from './schema/messages';
import { toDate, toDateOrNull, type SqlParam } from './sql.runner';

/**
 * The hot statements on `messages` as fixed text (see sql.runner.ts for why), and the decoding
 * of their rows into drizzle's `MessageRow`. The columns are listed in the schema's order; a
 * test compares them with the drizzle schema.
 */
export const MESSAGE_COLUMNS = [
  'seq', 'id', 'topic', 'message_key', 'payload', 'headers', 'status', 'check_url', 'check_after_ms', 'check_interval_ms', 'max_checks',
  'on_checks_exhausted', 'delay_ms', 'checks', 'next_check_at', 'content_hash', 'created_at', 'updated_at', 'confirmed_at', 'cancelled_at', 'trace_parent',
] as const;

/** A `messages` row as mysql2 returns it with the pool's settings (connection.ts). */
export interface MessageRecord {
  /** BIGINT UNSIGNED: a string with `bigNumberStrings`. */
  seq: string | number;
  id: string;
  topic: string;
  message_key: string | null;
  payload: string;
  headers: string;
  status: string;
  check_url: string | null;
  check_after_ms: number;
  check_interval_ms: number;
  max_checks: number;
  on_checks_exhausted: string;
  delay_ms: number;
  checks: number;
  /** DATETIME(3) as `YYYY-MM-DD HH:MM:SS.mmm` (UTC), with `dateStrings`. */
  next_check_at: string | null;
  content_hash: string;
  created_at: string;
  updated_at: string;
  confirmed_at: string | null;
  cancelled_at: string | null;
  trace_parent: string | null;
}

/** The select list of a whole message, for `FROM messages m`. */
export const MESSAGE_SELECT = MESSAGE_COLUMNS.map((c) => `m.${c}`).join(', ');

/** Every column but `seq` (AUTO_INCREMENT), in `messageValues` order; `?` takes an array of them. */
export const INSERT_MESSAGES = `INSERT INTO messages (${MESSAGE_COLUMNS.slice(1).join(', ')}) VALUES ?`;

/** `?`: the ids, an array (never empty). */
export const SELECT_MESSAGES_BY_ID = `SELECT ${MESSAGE_SELECT} FROM messages m WHERE m.id IN (?)`;

/** `?`: the id. */
export const SELECT_MESSAGE = `SELECT ${MESSAGE_SELECT} FROM messages m WHERE m.id = ? LIMIT 1`;

/** Confirm batch, the plain read: which of the ids (`?`, an array) are still prepared. */
export const SELECT_PREPARED_IDS = "SELECT id FROM messages WHERE id IN (?) AND status = 'prepared'";

/** Confirm batch, the locking read of the candidates (`?`, an array), in id order; held rows are skipped. */
export const LOCK_MESSAGES_SKIP_LOCKED = `SELECT ${MESSAGE_SELECT} FROM messages m WHERE m.id IN (?) ORDER BY m.id FOR UPDATE SKIP LOCKED`;

/**
 * Confirm batch: `decidedColumns('confirmed', now)` of message.repository.ts, for the ids
 * (`updated_at`, `confirmed_at`, then the ids) that are still prepared.
 */
export const CONFIRM_PREPARED =
  "UPDATE messages SET status = 'confirmed', next_check_at = NULL, updated_at = ?, confirmed_at = ? WHERE id IN (?) AND status = 'prepared'";

/** One row of `INSERT_MESSAGES`. */
export function messageValues(row: Omit<MessageRow, 'seq'>): SqlParam[] {
  return [
    row.id, row.topic, row.key, row.payload, row.headers, row.status, row.checkUrl, row.checkAfterMs, row.checkIntervalMs, row.maxChecks,
    row.onChecksExhausted, row.delayMs, row.checks, row.nextCheckAt, row.contentHash, row.createdAt, row.updatedAt, row.confirmedAt, row.cancelledAt, row.traceParent,
  ];
}

/** A message row as drizzle's `select().from(messages)` gave it. */
export function toMessageRow(r: MessageRecord): MessageRow {
  return {
    seq: BigInt(r.seq),
    id: r.id,
    topic: r.topic,
    key: r.message_key,
    payload: r.payload,
    headers: r.headers,
    status: r.status,
    checkUrl: r.check_url,
    checkAfterMs: r.check_after_ms,
    checkIntervalMs: r.check_interval_ms,
    maxChecks: r.max_checks,
    onChecksExhausted: r.on_checks_exhausted,
    delayMs: r.delay_ms,
    checks: r.checks,
    nextCheckAt: toDateOrNull(r.next_check_at),
    contentHash: r.content_hash,
    createdAt: toDate(r.created_at),
    updatedAt: toDate(r.updated_at),
    confirmedAt: toDateOrNull(r.confirmed_at),
    cancelledAt: toDateOrNull(r.cancelled_at),
    traceParent: r.trace_parent,
  };
}
