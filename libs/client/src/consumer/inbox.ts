import { runStatement, safeConsumerId, safeTable, sqlSafe } from '../sql.guards';
import { ER_DUP_ENTRY, sqlErrno, type SqlPool, type TransactionRunner } from '../transaction.runner';

/** The default name of the inbox table. */
export const INBOX_TABLE = 'herald_inbox';

const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

/**
 * The inbox table: one row per (consumer, message id) the consumer has processed, written in the
 * same transaction as the consumer's own effects. The primary key turns a second delivery of the
 * same message into a duplicate-key error instead of a second effect. `message_id` holds
 * `<tenant>/<id>` (up to 193 characters) for tenants other than `default`.
 */
export function inboxTableSql(table = INBOX_TABLE): string {
  return `CREATE TABLE IF NOT EXISTS ${safeTable(table)} (
  consumer     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  message_id   VARCHAR(193) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  processed_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (consumer, message_id)
)`;
}

/** Creates the inbox table if it is missing (or run {@link inboxTableSql} in your migrations). */
export async function ensureInboxTable(pool: SqlPool, table = INBOX_TABLE): Promise<void> {
  await runStatement(pool, inboxTableSql(table));
}

/** Options of {@link processOnce}. */
export interface InboxOptions<Tx> {
  transactions: TransactionRunner<Tx>;
  /** Names this consumer, so several consumers may share one inbox table. */
  consumer: string;
  table?: string;
}

/** What {@link processOnce} did. */
export type InboxOutcome<T> = { duplicate: false; value: T } | { duplicate: true };

class AlreadyProcessed extends Error {}

/**
 * Runs `work` at most once per message id (the consumer id Herald sends: unique across tenants), in effect: the inbox row and the work's writes commit
 * together or not at all, so at-least-once delivery gives exactly-once effects. A second delivery
 * finds the row and does nothing (`duplicate: true`); two deliveries at once serialise on the row
 * lock and the second sees a duplicate. If `work` throws, nothing is recorded and a redelivery
 * runs it again.
 */
export async function processOnce<Tx, T>(options: InboxOptions<Tx>, messageId: string, work: (tx: Tx) => Promise<T>): Promise<InboxOutcome<T>> {
  const table = safeTable(options.table ?? INBOX_TABLE);
  const consumer = sqlSafe(options.consumer, NAME, 'consumer name');
  const id = safeConsumerId(messageId);
  try {
    const value = await options.transactions.run(async (tx, execute) => {
      try {
        // First, so a concurrent duplicate waits here instead of repeating the work.
        await execute(`INSERT INTO ${table} (consumer, message_id) VALUES ('${consumer}', '${id}')`);
      } catch (err) {
        if (sqlErrno(err) === ER_DUP_ENTRY) throw new AlreadyProcessed();
        throw err;
      }
      return work(tx);
    });
    return { duplicate: false, value };
  } catch (err) {
    if (err instanceof AlreadyProcessed || (err as { cause?: unknown }).cause instanceof AlreadyProcessed) return { duplicate: true };
    throw err;
  }
}
