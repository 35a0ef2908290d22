import { runStatement, safeId, safeTable } from '../sql.guards';
import { ER_DUP_ENTRY, ER_LOCK_WAIT_TIMEOUT, sqlErrno, type Execute, type SqlPool } from '../transaction.runner';
import type { CheckStatus } from '../types';

export { safeId } from '../sql.guards';

/** The default name of the barrier table. */
export const BARRIER_TABLE = 'herald_barrier';

/**
 * The barrier table: one row per message id, written either by the producer's own transaction
 * (`commit`, in the same transaction as the business writes) or by a check-back that found no
 * row (`rollback`). The primary key makes the two writers exclude each other: whichever inserts
 * first wins, and the other fails (the transaction) or reads the winner's row (the check).
 */
export function barrierTableSql(table = BARRIER_TABLE): string {
  return `CREATE TABLE IF NOT EXISTS ${safeTable(table)} (
  message_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  outcome    VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (message_id),
  KEY ix_${safeTable(table)}_created (created_at)
)`;
}

/** Creates the barrier table if it is missing (or run {@link barrierTableSql} in your migrations). */
export async function ensureBarrierTable(pool: SqlPool, table = BARRIER_TABLE): Promise<void> {
  await runStatement(pool, barrierTableSql(table));
}

/**
 * Default retention of barrier rows: 14 days. It covers the default check schedule (the 15th
 * check comes about 91 minutes after prepare) and the longest first check the API accepts
 * (`checkAfterMs` up to 7 days), with a week to spare for Herald being down.
 */
export const DEFAULT_BARRIER_RETENTION_SECONDS = 14 * 86_400;

/** Options of {@link pruneBarrier}. */
export interface PruneBarrierOptions {
  /**
   * Keep rows at least this long (default {@link DEFAULT_BARRIER_RETENTION_SECONDS}). It must be
   * at least the longest check schedule in use — `checkAfterMs` plus the waits before `maxChecks`
   * checks (up to 100, each wait up to a day) — plus the longest Herald outage you plan for:
   * Herald checks late after an outage, and a check that finds no row answers rollback, which
   * would cancel a message whose transaction committed.
   */
  retentionSeconds?: number;
  /** Rows deleted per statement, so a large backlog never holds locks for long (default 1000). */
  batchSize?: number;
  table?: string;
}

/**
 * Deletes barrier rows older than the retention and returns how many. Age is measured by the
 * database's own clock (`NOW(3)` against `created_at`, which it also wrote), so neither the
 * application's clock nor the pool's time zone setting can shift the cutoff. Deletes in batches
 * of `batchSize` until none is left.
 */
export async function pruneBarrier(pool: SqlPool, options: PruneBarrierOptions = {}): Promise<number> {
  const table = safeTable(options.table ?? BARRIER_TABLE);
  const retention = options.retentionSeconds ?? DEFAULT_BARRIER_RETENTION_SECONDS;
  const batchSize = options.batchSize ?? 1_000;
  if (!Number.isInteger(retention) || retention < 1) throw new TypeError(`retentionSeconds must be a positive integer, got ${retention}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new TypeError(`batchSize must be a positive integer, got ${batchSize}`);
  const connection = await pool.getConnection();
  let deleted = 0;
  try {
    for (;;) {
      const [result] = (await connection.query(`DELETE FROM ${table} WHERE created_at < NOW(3) - INTERVAL ? SECOND LIMIT ?`, [retention, batchSize])) as unknown as [{ affectedRows: number }];
      deleted += result.affectedRows;
      if (result.affectedRows < batchSize) return deleted;
    }
  } finally {
    connection.release();
  }
}

/** Writes the producer's `commit` row inside its transaction. */
export async function insertCommitRow(execute: Execute, messageId: string, table = BARRIER_TABLE): Promise<void> {
  await execute(`INSERT INTO ${safeTable(table)} (message_id, outcome) VALUES ('${safeId(messageId)}', 'commit')`);
}

/** Options of {@link answerFromBarrier}. */
export interface AnswerOptions {
  table?: string;
  /**
   * How long to wait for a producer transaction that holds the row (it inserted its `commit` row
   * and is committing). Past it the answer is `unknown` and Herald asks again (default 5 s).
   */
  lockWaitSeconds?: number;
}

/**
 * The check-back answer, from the barrier table alone. A `commit` row → commit. No row → insert
 * a `rollback` row and answer rollback: from then on the producer's transaction cannot insert its
 * row, so it fails and can never commit behind Herald's back. If the producer's transaction holds
 * the row, the insert waits for it to end and then sees its outcome.
 */
export async function answerFromBarrier(pool: SqlPool, messageId: string, options: AnswerOptions = {}): Promise<CheckStatus> {
  const table = safeTable(options.table ?? BARRIER_TABLE);
  const id = safeId(messageId);
  const connection = await pool.getConnection();
  try {
    await connection.query(`SET SESSION innodb_lock_wait_timeout = ${Math.max(1, Math.floor(options.lockWaitSeconds ?? 5))}`);
    try {
      await connection.query(`INSERT INTO ${table} (message_id, outcome) VALUES (?, 'rollback')`, [id]);
      return 'rollback';
    } catch (err) {
      const errno = sqlErrno(err);
      if (errno === ER_LOCK_WAIT_TIMEOUT) return 'unknown';
      if (errno !== ER_DUP_ENTRY) throw err;
    }
    const [rows] = (await connection.query(`SELECT outcome FROM ${table} WHERE message_id = ?`, [id])) as [Array<{ outcome: string }>];
    const outcome = rows[0]?.outcome;
    return outcome === 'commit' ? 'commit' : outcome === 'rollback' ? 'rollback' : 'unknown';
  } finally {
    await connection.query('SET SESSION innodb_lock_wait_timeout = DEFAULT').catch(() => undefined);
    connection.release();
  }
}
