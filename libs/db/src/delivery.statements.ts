import { deliveries, type DeliveryRow } from './schema/deliveries';
import { MESSAGE_ROW } from './message.statements';
import { rowCodec } from './row.codec';
import { caseById, type SqlParam } from './sql.runner';
import { SUBSCRIPTION_ROW } from './subscription.statements';

// The hot statements on deliveries and their attempts as fixed text (see sql.runner.ts). Locking
// reads keep one lock order: message rows, then delivery rows, each in id order.

/** A whole delivery, each column aliased `d_…` to share a row with its message and subscription. */
export const DELIVERY_ROW = rowCodec(deliveries, 'deliveries', 'd', 'd_');

/** One row of an attempt's context: the delivery, its message, and its subscription if it still exists. */
export type ContextRecord = Record<string, unknown> & { s_id: string | null };

/** `?`: the delivery ids, an array (never empty). */
export const SELECT_CONTEXTS = `SELECT ${DELIVERY_ROW.select}, ${MESSAGE_ROW.select}, ${SUBSCRIPTION_ROW.select} FROM deliveries d
  INNER JOIN messages m ON m.seq = d.message_seq
  LEFT JOIN subscriptions s ON s.id = d.subscription_id
  WHERE d.id IN (?)`;

/** Fan-out: `?` takes an array of `newDeliveryValues`. */
export const INSERT_DELIVERIES = 'INSERT INTO deliveries (message_seq, message_id, subscription_id, target_type, status, attempts, generation, next_attempt_at, lease_until, created_at, updated_at, order_key) VALUES ?';

/**
 * One new delivery of `INSERT_DELIVERIES`: pending, first generation, no attempt yet, due at
 * `runAt` (null: waiting behind its key); with `leaseUntil`, already leased to the process whose
 * transaction creates it; with `orderKey`, in that key's sequence.
 */
export function newDeliveryValues(message: { seq: bigint; id: string }, subscriptionId: string, targetType: string, runAt: Date | null, now: Date, leaseUntil: Date | null = null, orderKey: string | null = null): SqlParam[] {
  return [message.seq, message.id, subscriptionId, targetType, 'pending', 0, 0, runAt, leaseUntil, now, now, orderKey];
}

/**
 * SQL one `INSERT_DELIVERIES` may carry, in bytes. A group commit's fan-out (up to 200 messages,
 * each times every matching subscription) can outgrow `@@max_allowed_packet` as one statement,
 * and MariaDB answers that by dropping the connection, failing the whole batch every time. A
 * quarter of a MiB stays below any packet size in use (1 MiB is the smallest default) and still
 * takes hundreds of rows, so a usual batch's deliveries remain one statement.
 */
export const DELIVERY_INSERT_BYTES = 256 * 2 ** 10;

/**
 * `INSERT_DELIVERIES` rows (`newDeliveryValues`) in chunks of at most `DELIVERY_INSERT_BYTES`:
 * strings counted twice over for escaping, plus room for the dates, numbers and syntax.
 */
export function deliveryInserts(rows: SqlParam[][]): SqlParam[][][] {
  const chunks: SqlParam[][][] = [];
  let chunk: SqlParam[][] = [];
  let bytes = 0;
  for (const row of rows) {
    const weight = row.reduce<number>((sum, v) => sum + (typeof v === 'string' ? 2 * Buffer.byteLength(v) : 0), 128);
    if (chunk.length > 0 && bytes + weight > DELIVERY_INSERT_BYTES) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(row);
    bytes += weight;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/**
 * Fan-out, the read-back of the new deliveries' ids by (message, subscription) for the messages
 * (`?`, their seqs); the fan-out knows the rest of each row and orders them itself.
 */
export const SELECT_NEW_DELIVERIES = 'SELECT id, message_seq, subscription_id FROM deliveries WHERE message_seq IN (?)';

/**
 * A lone claim: taken if the row is unleased, its lease ran out, or it is still the lease this
 * process was given (`lease_until` = the last parameter; NULL matches nothing, for a plain claim),
 * and never while it waits behind its key (no `next_attempt_at`). Lease until, now, id, generation, attempts, now, the lease held or NULL.
 */
export const CLAIM_DELIVERY = `UPDATE deliveries SET lease_until = ?, updated_at = ?
  WHERE id = ? AND status = 'pending' AND generation = ? AND attempts = ? AND next_attempt_at IS NOT NULL AND (lease_until IS NULL OR lease_until < ? OR lease_until = ?)`;

/** A claim batch, the locking read of its deliveries (`?`, an array), in id order; held rows are skipped. */
export const LOCK_DELIVERIES_FOR_CLAIM = 'SELECT id, status, generation, attempts, lease_until, next_attempt_at FROM deliveries WHERE id IN (?) ORDER BY id FOR UPDATE SKIP LOCKED';

/** A claim batch's leases: (id, lease until) × n, then now, then the ids. */
export function setLeases(n: number): string {
  return `UPDATE deliveries SET lease_until = ${caseById(n)}, updated_at = ? WHERE id IN (?)`;
}

/** Every write to a message's deliveries first locks the messages (`?`, their seqs), in seq order. */
export const LOCK_MESSAGE_SEQS = 'SELECT seq FROM messages WHERE seq IN (?) ORDER BY seq FOR UPDATE';

/** `LOCK_MESSAGE_SEQS` for a batch: held rows are skipped. */
export const LOCK_MESSAGE_SEQS_SKIP_LOCKED = 'SELECT seq FROM messages WHERE seq IN (?) ORDER BY seq FOR UPDATE SKIP LOCKED';

/** An attempt batch, the locking read of its deliveries (`?`, an array), in id order; held rows are skipped. */
export const LOCK_DELIVERIES_SKIP_LOCKED = 'SELECT id, status, generation, attempts FROM deliveries WHERE id IN (?) ORDER BY id FOR UPDATE SKIP LOCKED';

/** What an attempt result sets on its delivery. */
export type AttemptResultSet = Pick<DeliveryRow, 'status' | 'attempts' | 'lastStatusCode' | 'lastError' | 'nextAttemptAt' | 'deliveredAt' | 'deadAt'>;

/** The columns an attempt result sets, each with where its value comes from. */
const ATTEMPT_RESULT: ReadonlyArray<readonly [column: string, pick: (set: AttemptResultSet) => SqlParam]> = [
  ['status', (set) => set.status],
  ['attempts', (set) => set.attempts],
  ['last_status_code', (set) => set.lastStatusCode],
  ['last_error', (set) => set.lastError],
  ['next_attempt_at', (set) => set.nextAttemptAt],
  ['delivered_at', (set) => set.deliveredAt],
  ['dead_at', (set) => set.deadAt],
];

/**
 * One attempt's result: `attemptResultValues`, now, then id, generation and attempts as the
 * job knew them — it changes nothing if the row moved on.
 */
export const RECORD_ATTEMPT = `UPDATE deliveries SET ${ATTEMPT_RESULT.map(([c]) => `${c} = ?`).join(', ')}, lease_until = NULL, updated_at = ?
  WHERE id = ? AND generation = ? AND attempts = ? AND status = 'pending'`;

export function attemptResultValues(set: AttemptResultSet): SqlParam[] {
  return ATTEMPT_RESULT.map(([, pick]) => pick(set));
}

/** An attempt batch's results for `n` deliveries: `attemptResultCases`, now, then the ids. */
export function recordAttempts(n: number): string {
  const when = caseById(n);
  return `UPDATE deliveries SET ${ATTEMPT_RESULT.map(([c]) => `${c} = ${when}`).join(', ')}, lease_until = NULL, updated_at = ? WHERE id IN (?)`;
}

/** The values of `recordAttempts`' CASEs: per column, (id, value) for each delivery. */
export function attemptResultCases(results: ReadonlyArray<{ id: number; set: AttemptResultSet }>): SqlParam[] {
  const values: SqlParam[] = [];
  for (const [, pick] of ATTEMPT_RESULT) for (const r of results) values.push(r.id, pick(r.set));
  return values;
}

const ATTEMPT_COLUMNS = 'delivery_id, generation, attempt, started_at, duration_ms, ok, status_code, error, response_excerpt';

/** `?` takes an array of attempt rows, each in this column order. */
export const INSERT_ATTEMPTS = `INSERT INTO delivery_attempts (${ATTEMPT_COLUMNS}) VALUES ?`;

/**
 * One attempt row (`?`, its values), written only if the statement before it, the delivery's
 * `RECORD_ATTEMPT`, matched its row: `ROW_COUNT()` is that statement's count (MySQL and MariaDB).
 */
export const INSERT_ATTEMPT_IF_RECORDED = `INSERT INTO delivery_attempts (${ATTEMPT_COLUMNS}) SELECT ? FROM DUAL WHERE ROW_COUNT() = 1`;

/**
 * Sets committed messages' status from their deliveries (see `rollUpMessageStatus`): now, then
 * the message seqs (an array). One pass over a message's deliveries decides it: any dead →
 * failed, else any pending → confirmed, else (some, all delivered) → delivered; none → confirmed.
 * (Three EXISTS looked the deliveries up as many as three times: the attempt trip took about
 * 14 % more server CPU, docs/performance.md.)
 */
export const ROLL_UP_MESSAGE_STATUS = `
    UPDATE messages m SET
      m.status = (
        SELECT CASE
          WHEN SUM(d.status = 'dead') > 0 THEN 'failed'
          WHEN SUM(d.status = 'pending') > 0 THEN 'confirmed'
          WHEN COUNT(*) > 0 THEN 'delivered'
          ELSE 'confirmed' END
        FROM deliveries d FORCE INDEX (uq_deliveries_message_seq_subscription) WHERE d.message_seq = m.seq),
      m.updated_at = ?
    WHERE m.seq IN (?)
      AND m.status IN ('confirmed', 'delivered', 'failed')`;

/** `ROLL_UP_MESSAGE_STATUS` only if the statement before it (`INSERT_ATTEMPT_IF_RECORDED`) wrote its row. */
export const ROLL_UP_IF_RECORDED = `${ROLL_UP_MESSAGE_STATUS} AND ROW_COUNT() = 1`;

/** A delivery's state as the locking reads of a claim or an attempt batch return it. */
export interface DeliveryStateRecord {
  id: string | number;
  status: string;
  generation: number;
  attempts: number;
}

/** The values of one attempt row of `INSERT_ATTEMPTS`. */
export function attemptValues(a: {
  deliveryId: number;
  generation: number;
  attempt: number;
  startedAt: Date;
  durationMs: number;
  ok: boolean;
  statusCode?: number | null;
  error?: string | null;
  responseExcerpt?: string | null;
}): SqlParam[] {
  return [a.deliveryId, a.generation, a.attempt, a.startedAt, a.durationMs, a.ok, a.statusCode ?? null, a.error ?? null, a.responseExcerpt ?? null];
}
