import type { PoolConnection } from 'mysql2/promise';
import type { HeraldDb } from './connection';
import { formatSql, type SqlExecutor, type SqlParam } from './sql.runner';

/** A statement's text and the values of its `?`s (none: the text is sent as it is). */
export type Statement = readonly [text: string, values?: readonly SqlParam[]];

export interface FoldedTransactionOptions {
  /**
   * READ COMMITTED instead of the session's REPEATABLE READ: a locking read then takes no gap
   * locks, so a confirm batch looking up an id that does not exist does not hold back the
   * prepares inserting next to it until it commits.
   */
  readCommitted?: boolean;
}

/**
 * A transaction on one pooled connection that sends its statements several to a round trip
 * (the pool's `multipleStatements`): START TRANSACTION travels with the first trip and COMMIT
 * with the last. Why and how errors end it: docs/design.md, "Folded transactions".
 */
export class FoldedTransaction implements SqlExecutor {
  private begun = false;
  private committed = false;

  constructor(
    private readonly connection: PoolConnection,
    private readonly options: FoldedTransactionOptions = {},
  ) {}

  get open(): boolean {
    return this.begun && !this.committed;
  }

  /**
   * Runs the statements in order in one round trip and returns their answers (rows for a SELECT,
   * the header for a write). MySQL stops at the first failing statement and the promise rejects;
   * the caller's `foldedTransaction` then rolls the whole transaction back.
   */
  async send(statements: readonly Statement[], options: { commit?: boolean } = {}): Promise<unknown[]> {
    if (this.committed) throw new Error('folded transaction already committed');
    const texts = statements.map(([text, values]) => (values ? formatSql(text, values) : text));
    const opening = this.begun ? [] : [...(this.options.readCommitted ? ['SET TRANSACTION ISOLATION LEVEL READ COMMITTED'] : []), 'START TRANSACTION'];
    const lead = opening.length;
    texts.unshift(...opening);
    if (options.commit) texts.push('COMMIT');
    if (texts.length === 0) return [];
    this.begun = true;
    const [answer] = await this.connection.query(texts.join(';\n'));
    if (options.commit) this.committed = true;
    // mysql2 answers one statement with its result, several with an array of results.
    const answers = texts.length === 1 ? [answer] : (answer as unknown[]);
    return answers.slice(lead, lead + statements.length);
  }

  /** One already formatted statement, as drizzle's `execute` answers it: what `runSql` and `selectSql` call. */
  async execute(query: string): Promise<unknown> {
    const [answer] = await this.send([[query]]);
    return [answer, undefined];
  }

  /** Commits unless nothing was sent or the last trip carried the COMMIT. */
  async commit(): Promise<void> {
    if (this.open) await this.send([], { commit: true });
  }
}

/**
 * Runs `work` in a folded transaction and commits it (with its last trip if `work` sent COMMIT
 * itself). Anything thrown rolls it back; a connection that cannot even do that is destroyed
 * rather than handed back to the pool mid-transaction.
 */
export async function foldedTransaction<T>(db: HeraldDb, work: (tx: FoldedTransaction) => Promise<T>, options: FoldedTransactionOptions = {}): Promise<T> {
  const connection = await db.$client.getConnection();
  const tx = new FoldedTransaction(connection, options);
  let result: T;
  try {
    result = await work(tx);
    await tx.commit();
  } catch (error) {
    try {
      if (tx.open) await connection.query('ROLLBACK');
      connection.release();
    } catch {
      connection.destroy();
    }
    throw error;
  }
  connection.release();
  return result;
}
