import { eq, sql } from 'drizzle-orm';
import type { HeraldDb } from './connection';
import { purgeRuns } from './schema/purge';
import { runSql, selectSql, toDate, type SqlExecutor, type SqlParam } from './sql.runner';
import { withDeadlockRetry } from './transactions';

/** The statuses a message may be purged from; every other status is kept however old. */
export const PURGEABLE_STATUSES = ['delivered', 'cancelled', 'failed'] as const;
export type PurgeableStatus = (typeof PURGEABLE_STATUSES)[number];

/** Rows one batch removed, by table. */
export interface PurgeCounts {
  messages: number;
  deliveries: number;
  deliveryAttempts: number;
  checkAttempts: number;
}

export interface PurgeBatch extends PurgeCounts {
  /** Messages the index offered (up to the limit): fewer than the limit means none are left. */
  candidates: number;
  /** Of those, the ones this batch held; the rest another purger (or a writer) held. */
  locked: number;
  /** The last candidate: where a next batch may go on from, past messages this one kept. */
  last: PurgeCursor | null;
  /** When the first candidate finished (its updated_at): with `last`, how fast the candidates finished. */
  firstAt: Date | null;
}

/** A place in the (status, updated_at) index; InnoDB appends the primary key (seq) to it. */
export interface PurgeCursor {
  updatedAt: Date;
  seq: string;
}

export interface PurgeRun {
  name: string;
  lastRunAt: Date;
  lastRunRemoved: number;
  totalRemoved: number;
}

export const emptyCounts = (): PurgeCounts => ({ messages: 0, deliveries: 0, deliveryAttempts: 0, checkAttempts: 0 });

/** Ids per DELETE: keeps each statement small whatever a message's history holds. */
const DELETE_CHUNK = 1_000;

// Candidates come from a plain read of the (status, updated_at) index; the batch then locks them
// by primary key in seq order (record locks only, never a range), skipping rows a writer holds.
// Children are found by message_seq: ids are unique per tenant only.
const CANDIDATES = `SELECT seq, updated_at FROM messages FORCE INDEX (ix_messages_status_updated)
  WHERE status = ? AND updated_at >= ? AND (updated_at > ? OR seq > ?) AND updated_at < ? ORDER BY status, updated_at, seq LIMIT ?`;
/**
 * FORCE INDEX (PRIMARY): left to itself the optimizer often reads these through (status, seq) or
 * (status, updated_at), whose next-key locks cover the gap before the oldest finished message,
 * where every confirm moves its message's entries: each confirm then waited for the whole batch.
 */
const LOCK_CANDIDATES = 'SELECT seq FROM messages FORCE INDEX (PRIMARY) WHERE seq IN (?) AND status = ? AND updated_at < ? ORDER BY seq FOR UPDATE SKIP LOCKED';
const DELIVERIES_OF = 'SELECT id, message_seq, status, order_key, skipped_at FROM deliveries WHERE message_seq IN (?)';
const ATTEMPTS_OF = 'SELECT id FROM delivery_attempts WHERE delivery_id IN (?)';
const CHECKS_OF = 'SELECT id FROM check_attempts WHERE message_seq IN (?)';

/**
 * Retention: removes everything about a message (its attempts, deliveries, check calls and row)
 * once it has been delivered, cancelled or failed for longer than its retention. Each batch is one
 * short transaction, so a batch cut off (connection or process killed) removes nothing.
 */
export class PurgeRepository {
  private readonly now: () => Date;

  constructor(
    private readonly db: HeraldDb,
    options: { now?: () => Date } = {},
  ) {
    this.now = options.now ?? (() => new Date());
  }

  /**
   * One batch: up to `limit` messages in `status` since before `olderThan`, with no pending
   * delivery, after `after` in index order. Message rows are locked first (Herald's lock order); every writer of
   * deliveries, attempts or check calls locks the message first, so what is read after that cannot change.
   */
  async purgeBatch(status: PurgeableStatus, olderThan: Date, limit: number, after: PurgeCursor = { updatedAt: new Date(0), seq: '0' }): Promise<PurgeBatch> {
    const found = await selectSql<{ seq: string | number; updated_at: string }>(this.db, CANDIDATES, [status, after.updatedAt, after.updatedAt, after.seq, olderThan, limit]);
    const candidates = found.map((r) => BigInt(r.seq));
    const end = found.at(-1);
    const last = end ? { updatedAt: toDate(end.updated_at), seq: String(end.seq) } : null;
    const firstAt = found[0] ? toDate(found[0].updated_at) : null;
    if (candidates.length === 0) return { ...emptyCounts(), candidates: 0, locked: 0, last, firstAt };
    const counts = await withDeadlockRetry(() =>
      this.db.transaction(async (tx) => {
        const byOrder = [...candidates].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
        const locked = (await selectSql<{ seq: string | number }>(tx, LOCK_CANDIDATES, [byOrder.map(String), status, olderThan])).map((r) => String(r.seq));
        const done = { ...emptyCounts(), locked: locked.length };
        if (locked.length === 0) return done;
        // The first plain read: its snapshot is taken now, after the locks, so it is current.
        const deliveries = await selectSql<{ id: string | number; message_seq: string | number; status: string; order_key: string | null; skipped_at: string | null }>(tx, DELIVERIES_OF, [locked]);
        // Kept too: a dead, unskipped delivery that blocks an ordered key (the key needs it to move on).
        const holds = (d: (typeof deliveries)[number]) => d.status === 'pending' || (d.status === 'dead' && d.order_key !== null && d.skipped_at === null);
        const pending = new Set(deliveries.filter(holds).map((d) => String(d.message_seq)));
        const seqs = locked.filter((seq) => !pending.has(seq));
        if (seqs.length === 0) return done;
        const deliveryIds = deliveries.filter((d) => !pending.has(String(d.message_seq))).map((d) => Number(d.id));
        const attemptIds = deliveryIds.length === 0 ? [] : await idsOf(tx, ATTEMPTS_OF, deliveryIds);
        const checkIds = await idsOf(tx, CHECKS_OF, seqs);
        // Children first, then the message: by primary key only, so no gap is locked.
        done.deliveryAttempts = await deleteByKey(tx, 'delivery_attempts', attemptIds);
        done.deliveries = await deleteByKey(tx, 'deliveries', deliveryIds);
        done.checkAttempts = await deleteByKey(tx, 'check_attempts', checkIds);
        done.messages = await deleteByKey(tx, 'messages', seqs, 'seq');
        return done;
      }),
    );
    return { ...counts, candidates: candidates.length, last, firstAt };
  }

  /** When the oldest message in `status` reached it (its updated_at), or null if there is none; one index probe. */
  async oldestIn(status: PurgeableStatus): Promise<Date | null> {
    const [row] = await selectSql<{ at: string | null }>(this.db, 'SELECT MIN(updated_at) AS at FROM messages WHERE status = ?', [status]);
    return row?.at ? toDate(row.at) : null;
  }

  /** Records a finished run of purger `name`. */
  async recordRun(name: string, removed: number, at = this.now()): Promise<void> {
    await this.db
      .insert(purgeRuns)
      .values({ name, lastRunAt: at, lastRunRemoved: removed, totalRemoved: removed })
      .onDuplicateKeyUpdate({ set: { lastRunAt: at, lastRunRemoved: removed, totalRemoved: sql`${purgeRuns.totalRemoved} + ${removed}` } });
  }

  /**
   * Deletes up to `limit` per-key lock rows of ordered subscriptions idle since before
   * `idleBefore`, and only where the key's last delivery is settled or gone: a key with an open
   * tail keeps its row, which tells the next commit to wait its turn. Returns how many went.
   */
  async purgeOrderLocks(idleBefore: Date, limit: number): Promise<number> {
    const result = await runSql(
      this.db,
      `DELETE FROM delivery_order_locks WHERE locked_at < ? AND NOT EXISTS (
         SELECT 1 FROM deliveries d WHERE d.id = delivery_order_locks.last_delivery_id AND d.order_key IS NOT NULL
           AND (d.status = 'pending' OR (d.status = 'dead' AND d.skipped_at IS NULL)))
       ORDER BY locked_at LIMIT ?`,
      [idleBefore, limit],
    );
    return result.affectedRows;
  }

  async lastRun(name: string): Promise<PurgeRun | undefined> {
    const [row] = await this.db.select().from(purgeRuns).where(eq(purgeRuns.name, name));
    return row;
  }
}

async function idsOf(tx: SqlExecutor, text: string, keys: SqlParam[]): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < keys.length; i += DELETE_CHUNK) {
    for (const r of await selectSql<{ id: string | number }>(tx, text, [keys.slice(i, i + DELETE_CHUNK)])) ids.push(Number(r.id));
  }
  return ids;
}

/**
 * A DELETE of rows by primary key (`?`: the keys). Multi-table syntax, which takes an index hint:
 * on a small table (or a batch that is a large share of it) the optimizer scans the whole table
 * instead, and a scanning DELETE locks every row it reads, the newest messages' included.
 */
const deleteByKeySql = (table: string, key: 'id' | 'seq' = 'id') => `DELETE t FROM ${table} t FORCE INDEX (PRIMARY) WHERE t.${key} IN (?)`;

async function deleteByKey(tx: SqlExecutor, table: string, ids: Array<string | number>, key: 'id' | 'seq' = 'id'): Promise<number> {
  let removed = 0;
  for (let i = 0; i < ids.length; i += DELETE_CHUNK) {
    removed += (await runSql(tx, deleteByKeySql(table, key), [ids.slice(i, i + DELETE_CHUNK)])).affectedRows;
  }
  return removed;
}
