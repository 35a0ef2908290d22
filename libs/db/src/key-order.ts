import type { DeliveryJobRef } from '@herald/domain';
import { runSql, selectSql, toDate, toDateOrNull, toNumber, type SqlExecutor } from './sql.runner';

// Per-key ordered delivery (docs/design.md, "Per-key ordering"). A key's sequence is its
// deliveries on one subscription in id order; the open ones (pending, or dead and not skipped)
// are its tail, and the first of them, the head, is the only one with a `next_attempt_at`.
// Every transaction that appends to a sequence or moves its head first upserts the key's lock
// row (after its message rows), so they run one at a time per key, in commit order. All reads
// here are locking point or short range reads: they see the latest commit, not an old snapshot.

/** One key's sequence on one subscription. */
export interface OrderKeyRef {
  subscriptionId: string;
  orderKey: string;
}

const refKey = (r: OrderKeyRef) => `${r.subscriptionId}\n${r.orderKey}`;

/** Takes the lock rows of `refs` (in one sorted order for all, so writers queue instead of deadlocking). */
export async function lockOrderKeys(tx: SqlExecutor, refs: readonly OrderKeyRef[], now: Date): Promise<void> {
  const unique = [...new Map(refs.map((r) => [refKey(r), r])).values()].sort((a, b) => (refKey(a) < refKey(b) ? -1 : refKey(a) > refKey(b) ? 1 : 0));
  if (unique.length === 0) return;
  await runSql(tx, LOCK_ORDER_KEYS, [unique.map((r) => [r.subscriptionId, r.orderKey, now]), now]);
}

/**
 * The keys (of `refs`, locked by the caller) whose sequence has an open tail: a delivery
 * appended to them must wait its turn. The last delivery tells, as the open ones are the tail;
 * one that left the sequence (redelivered out of order) or was purged no longer counts.
 */
export async function busyOrderKeys(tx: SqlExecutor, refs: readonly OrderKeyRef[]): Promise<Set<string>> {
  const busy = new Set<string>();
  if (refs.length === 0) return busy;
  const locks = await selectSql<{ subscription_id: string; order_key: string; last_delivery_id: string | number | null }>(tx, SELECT_ORDER_LOCKS, [refs.map((r) => [r.subscriptionId, r.orderKey])]);
  const lastIds = locks.filter((l) => l.last_delivery_id !== null).map((l) => toNumber(l.last_delivery_id as string | number));
  if (lastIds.length === 0) return busy;
  const open = new Set((await selectSql<{ id: string | number }>(tx, SELECT_OPEN_IN_SEQUENCE, [lastIds])).map((r) => toNumber(r.id)));
  for (const l of locks) if (l.last_delivery_id !== null && open.has(toNumber(l.last_delivery_id))) busy.add(refKey({ subscriptionId: l.subscription_id, orderKey: l.order_key }));
  return busy;
}

/** Whether `busyOrderKeys`' answer holds `ref`. */
export const isBusy = (busy: ReadonlySet<string>, ref: OrderKeyRef) => busy.has(refKey(ref));

/** Records each key's new last delivery (the highest id appended to it by this transaction). */
export async function setLastDeliveries(tx: SqlExecutor, last: ReadonlyArray<OrderKeyRef & { deliveryId: number }>, now: Date): Promise<void> {
  if (last.length === 0) return;
  await runSql(tx, SET_LAST_DELIVERIES, [last.map((l) => [l.subscriptionId, l.orderKey, l.deliveryId, now])]);
}

/**
 * After the delivery `afterId` of a key left the open tail (delivered or skipped), under the
 * key's lock: makes the next one due — at once, or when its message's delay ends — and returns
 * its job. Nothing if there is none, or it is already due.
 */
export async function wakeNext(tx: SqlExecutor, ref: OrderKeyRef, afterId: number, now: Date): Promise<DeliveryJobRef | undefined> {
  const [next] = await selectSql<{ id: string | number; status: string; generation: number; attempts: number; next_attempt_at: string | null; created_at: string; delay_ms: number | null }>(tx, SELECT_NEXT_IN_SEQUENCE, [
    ref.subscriptionId,
    ref.orderKey,
    afterId,
  ]);
  if (!next || next.status !== 'pending' || toDateOrNull(next.next_attempt_at) !== null) return undefined;
  const id = toNumber(next.id);
  const runAt = new Date(Math.max(now.getTime(), toDate(next.created_at).getTime() + (next.delay_ms ?? 0)));
  await runSql(tx, WAKE_DELIVERY, [runAt, now, id]);
  return { deliveryId: id, generation: next.generation, attempt: next.attempts, runAt };
}

/** (subscription, key, now) rows, then now. */
const LOCK_ORDER_KEYS = 'INSERT INTO delivery_order_locks (subscription_id, order_key, locked_at) VALUES ? ON DUPLICATE KEY UPDATE locked_at = ?';

/** `?`: (subscription, key) pairs — primary-key lookups of rows this transaction holds. */
const SELECT_ORDER_LOCKS = 'SELECT subscription_id, order_key, last_delivery_id FROM delivery_order_locks WHERE (subscription_id, order_key) IN (?) FOR UPDATE';

/** `?`: delivery ids; those still in their sequence and open. A share lock waits for a writer of the row. */
const SELECT_OPEN_IN_SEQUENCE = `SELECT id FROM deliveries WHERE id IN (?) AND order_key IS NOT NULL
  AND (status = 'pending' OR (status = 'dead' AND skipped_at IS NULL)) LOCK IN SHARE MODE`;

/** (subscription, key, last delivery id, now) rows. */
const SET_LAST_DELIVERIES = 'INSERT INTO delivery_order_locks (subscription_id, order_key, last_delivery_id, locked_at) VALUES ? ON DUPLICATE KEY UPDATE last_delivery_id = VALUES(last_delivery_id), locked_at = VALUES(locked_at)';

/**
 * The delivery after `?` (an id) in a key's sequence, locked; with its message's delay. The
 * message is read, not locked: its delay never changes, and message rows are locked first or not at all.
 */
const SELECT_NEXT_IN_SEQUENCE = `SELECT d.id, d.status, d.generation, d.attempts, d.next_attempt_at, d.created_at,
    (SELECT m.delay_ms FROM messages m WHERE m.seq = d.message_seq) AS delay_ms
  FROM deliveries d WHERE d.subscription_id = ? AND d.order_key = ? AND d.id > ? ORDER BY d.id LIMIT 1 FOR UPDATE`;

/** next attempt at, now, id: a waiting delivery becomes its key's head. */
const WAKE_DELIVERY = 'UPDATE deliveries SET next_attempt_at = ?, updated_at = ? WHERE id = ? AND status = \'pending\' AND next_attempt_at IS NULL';
