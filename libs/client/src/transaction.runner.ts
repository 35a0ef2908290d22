/**
 * The few methods of a mysql2 promise connection the SDK uses. Declared here rather than imported,
 * so the SDK has no runtime dependency on mysql2 and anything shaped like it works.
 */
export interface SqlConnection {
  query(sql: string, values?: unknown[]): Promise<unknown>;
  beginTransaction(): Promise<unknown>;
  commit(): Promise<unknown>;
  rollback(): Promise<unknown>;
}

/** A mysql2 promise pool (`mysql.createPool(...)` from `mysql2/promise`), structurally. */
export interface SqlPool {
  getConnection(): Promise<SqlConnection & { release(): void }>;
}

/** Runs one statement inside the transaction the runner opened. */
export type Execute = (sql: string) => Promise<unknown>;

/**
 * Opens a database transaction, hands it to `work` together with a way to run the SDK's own
 * statement inside it, and commits if `work` resolves (rolls back if it throws). `committing` is
 * called once `work` has finished, just before the commit: an error after it is ambiguous (the
 * commit may or may not have happened), and callers must not act as if it rolled back.
 */
export interface TransactionRunner<Tx> {
  run<T>(work: (tx: Tx, execute: Execute) => Promise<T>, committing?: () => void): Promise<T>;
}

/** Transactions on a connection taken from a mysql2 promise pool; `tx` is that connection. */
export function mysql2Transactions(pool: SqlPool): TransactionRunner<SqlConnection> {
  return {
    async run(work, committing) {
      const connection = await pool.getConnection();
      let reachedCommit = false;
      try {
        await connection.beginTransaction();
        const value = await work(connection, (sql) => connection.query(sql));
        committing?.();
        reachedCommit = true;
        await connection.commit();
        return value;
      } catch (err) {
        // After a failed COMMIT the server has already ended the transaction one way or the other.
        if (!reachedCommit) await connection.rollback().catch(() => undefined);
        throw err;
      } finally {
        connection.release();
      }
    },
  };
}

/** The part of a drizzle (mysql2) database the SDK uses: `transaction` with `tx.execute(sql)`. */
export interface DrizzleLike<Tx extends { execute(query: string): Promise<unknown> }> {
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
}

/** Transactions through drizzle's `db.transaction`; `tx` is drizzle's transaction object. */
export function drizzleTransactions<Tx extends { execute(query: string): Promise<unknown> }>(db: DrizzleLike<Tx>): TransactionRunner<Tx> {
  return {
    run(work, committing) {
      return db.transaction(async (tx) => {
        const value = await work(tx, (sql) => tx.execute(sql));
        committing?.();
        return value;
      });
    },
  };
}

/** MySQL's error number on an error thrown by mysql2 (also when drizzle wraps it as `cause`). */
export function sqlErrno(err: unknown): number | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const errno = (e as { errno?: unknown }).errno;
    if (typeof errno === 'number') return errno;
  }
  return undefined;
}

/** MySQL/MariaDB: duplicate key. */
export const ER_DUP_ENTRY = 1062;
/** MySQL/MariaDB: lock wait timeout exceeded. */
export const ER_LOCK_WAIT_TIMEOUT = 1205;
