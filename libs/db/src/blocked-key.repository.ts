import { orderKeyOf, splitOrderKey, type DeliveryJobRef } from '@herald/domain';
import type { HeraldDb } from './connection';
import { writeAudit, type AuditEntry } from './audit.repository';
import { lockOrderKeys, wakeNext } from './key-order';
import { runSql, selectSql, toDate, toNumber } from './sql.runner';
import { lockMessages, withDeadlockRetry } from './transactions';

/** A key of an ordered subscription held up by its dead head. */
export interface BlockedKey {
  tenant: string;
  key: string;
  /** The dead delivery at the head of the key, and its message. */
  deliveryId: number;
  messageId: string;
  deadAt: Date;
  lastError: string | null;
  lastStatusCode: number | null;
  /** Deliveries of the key waiting behind it. */
  waiting: number;
}

export interface SkippedKey {
  deliveryId: number;
  messageId: string;
  /** The next delivery of the key, due now (none if nothing waited). */
  woken?: DeliveryJobRef;
}

/** Page position: the last item's dead-at and delivery id. */
export interface BlockedKeyCursor {
  deadAt: Date;
  deliveryId: number;
}

/** The blocked keys of ordered subscriptions, and the operator's way past one: skip its dead head. */
export class BlockedKeyRepository {
  constructor(
    private readonly db: HeraldDb,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Oldest block first, through the subscription/status/dead-at index. */
  async list(subscriptionId: string, limit: number, after?: BlockedKeyCursor): Promise<BlockedKey[]> {
    const rows = await selectSql<{ id: string | number; message_id: string; order_key: string; dead_at: string; last_error: string | null; last_status_code: number | null }>(
      this.db,
      `SELECT id, message_id, order_key, dead_at, last_error, last_status_code FROM deliveries
        WHERE subscription_id = ? AND status = 'dead' AND order_key IS NOT NULL AND skipped_at IS NULL
        ${after ? 'AND (dead_at > ? OR (dead_at = ? AND id > ?))' : ''}
        ORDER BY dead_at, id LIMIT ?`,
      [subscriptionId, ...(after ? [after.deadAt, after.deadAt, after.deliveryId] : []), limit],
    );
    if (rows.length === 0) return [];
    const waiting = await selectSql<{ order_key: string; n: string | number }>(
      this.db,
      "SELECT order_key, COUNT(*) AS n FROM deliveries WHERE subscription_id = ? AND order_key IN (?) AND status = 'pending' GROUP BY order_key",
      [subscriptionId, rows.map((r) => r.order_key)],
    );
    const counts = new Map(waiting.map((w) => [w.order_key, toNumber(w.n)]));
    return rows.map((r) => ({
      ...splitOrderKey(r.order_key),
      deliveryId: toNumber(r.id),
      messageId: r.message_id,
      deadAt: toDate(r.dead_at),
      lastError: r.last_error,
      lastStatusCode: r.last_status_code,
      waiting: counts.get(r.order_key) ?? 0,
    }));
  }

  /**
   * Skips the dead head of a key: it stays dead (its message `failed`), is marked skipped, and
   * the next delivery of the key becomes due. Undefined if the key is not blocked. An operator's
   * skip (`audit`) is recorded in the same transaction.
   */
  async skip(subscriptionId: string, tenant: string, key: string, audit?: AuditEntry): Promise<SkippedKey | undefined> {
    const ref = { subscriptionId, orderKey: orderKeyOf(tenant, key) };
    return withDeadlockRetry(() =>
      this.db.transaction(async (tx) => {
        const now = this.now();
        const find = (lock: string) =>
          selectSql<{ id: string | number; message_seq: string | number; message_id: string }>(
            tx,
            `SELECT id, message_seq, message_id FROM deliveries WHERE subscription_id = ? AND order_key = ? AND status = 'dead' AND skipped_at IS NULL ORDER BY id LIMIT 1 ${lock}`,
            [ref.subscriptionId, ref.orderKey],
          );
        const [seen] = await find('');
        if (seen) {
          // Locks in the common order (message, key, deliveries), then reads the head again as locked.
          await lockMessages(tx, [BigInt(seen.message_seq)]);
          await lockOrderKeys(tx, [ref], now);
        }
        const [head] = seen ? await find('FOR UPDATE') : [];
        if (!head || toNumber(head.id) !== toNumber(seen!.id)) {
          if (audit) await writeAudit(tx, audit, 'not blocked', now);
          return undefined;
        }
        const deliveryId = toNumber(head.id);
        await runSql(tx, 'UPDATE deliveries SET skipped_at = ?, updated_at = ? WHERE id = ?', [now, now, deliveryId]);
        const woken = await wakeNext(tx, ref, deliveryId, now);
        if (audit) await writeAudit(tx, audit, `skipped delivery ${deliveryId}${woken ? `, delivery ${woken.deliveryId} due` : ''}`, now);
        return { deliveryId, messageId: head.message_id, woken };
      }),
    );
  }
}
