import type { MySqlTransaction } from 'drizzle-orm/mysql-core';
import { hasErrorCode } from './driver-errors';
import { LOCK_MESSAGE_SEQS, ROLL_UP_MESSAGE_STATUS } from './delivery.statements';
import { runSql } from './sql.runner';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Tx = MySqlTransaction<any, any, any, any>;

export const isDuplicateKey = (error: unknown) => hasErrorCode(error, ['ER_DUP_ENTRY']);

/**
 * Errors after which a transaction cannot go on: InnoDB rolled it back whole (deadlock, lock-wait
 * timeout with `innodb_rollback_on_timeout`) or the connection is gone (mysql2's `fatal`).
 * Others (duplicate key, value too long) roll back only their statement.
 */
export function endsTransaction(error: unknown): boolean {
  if (hasErrorCode(error, ['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT'])) return true;
  for (let e: unknown = error; e instanceof Error; e = e.cause) if ((e as { fatal?: unknown }).fatal === true) return true;
  return false;
}

/**
 * Runs `work` again when InnoDB picked it as a deadlock victim (its work was rolled back whole).
 * `lockWaitTimeouts: false` (group commits) does not retry 50 s lock waits: their writes have
 * their own path to fall back on.
 */
export async function withDeadlockRetry<T>(work: () => Promise<T>, attempts = 4, options: { lockWaitTimeouts?: boolean } = {}): Promise<T> {
  const retried = options.lockWaitTimeouts === false ? ['ER_LOCK_DEADLOCK'] : ['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT'];
  for (let i = 1; ; i++) {
    try {
      return await work();
    } catch (error) {
      if (i >= attempts || !hasErrorCode(error, retried)) throw error;
      await new Promise((r) => setTimeout(r, 5 * i + Math.random() * 20));
    }
  }
}

/** Group commits: a deadlock is retried twice; a lock-wait timeout sends the writes their own way. */
export const BATCH_RETRY = { attempts: 3, options: { lockWaitTimeouts: false } } as const;

/**
 * Every transaction that changes a message's deliveries locks the message rows first, in seq
 * order: one lock order for all, so they queue instead of deadlocking.
 */
export async function lockMessages(tx: Tx, messageSeqs: bigint[]): Promise<void> {
  const sorted = uniqueSeqs(messageSeqs);
  if (sorted.length === 0) return;
  await runSql(tx, LOCK_MESSAGE_SEQS, [sorted]);
}

/** Seqs once each, ascending: the lock order. */
export function uniqueSeqs(seqs: Iterable<bigint>): bigint[] {
  return [...new Set(seqs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Sets committed messages' status from their deliveries: failed while any is dead, delivered
 * when none is pending or dead, confirmed otherwise (see docs/design.md for its index hints).
 */
export async function rollUpMessageStatus(tx: Tx, messageSeqs: bigint[], now: Date): Promise<void> {
  if (messageSeqs.length === 0) return;
  await runSql(tx, ROLL_UP_MESSAGE_STATUS, [now, uniqueSeqs(messageSeqs)]);
}
