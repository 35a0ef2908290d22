import type { SqlPool } from './transaction.runner';

/** Message ids are `A-Z a-z 0-9 _ : -` (the contract), so one can be written into SQL as is. */
const MESSAGE_ID = /^[A-Za-z0-9_:-]{1,128}$/;
/**
 * The id a consumer de-duplicates by (`webhook-id`, AMQP `messageId`): the message id for the
 * `default` tenant, `<tenant>/<id>` for any other (a tenant is a-z 0-9 _ -, and never has `/`).
 */
export const CONSUMER_ID = /^(?:[a-z0-9_-]{1,64}\/)?[A-Za-z0-9_:-]{1,128}$/;
/** Table names the SDK writes into its statements: an unquoted MySQL identifier. */
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Refuses a value that does not match `pattern` before it is written into SQL. */
export function sqlSafe(value: string, pattern: RegExp, what: string): string {
  if (!pattern.test(value)) throw new TypeError(`${what} must match ${pattern}, got ${JSON.stringify(value.slice(0, 140))}`);
  return value;
}

/** Refuses anything that is not a contract message id before it reaches SQL. */
export function safeId(messageId: string): string {
  if (!MESSAGE_ID.test(messageId)) throw new TypeError(`message id must be 1–128 characters of A-Z a-z 0-9 _ : -, got ${JSON.stringify(messageId.slice(0, 140))}`);
  return messageId;
}

/** Refuses anything that is not a consumer id Herald sends before it reaches SQL. */
export function safeConsumerId(id: string): string {
  if (!CONSUMER_ID.test(id)) throw new TypeError(`message id must be a Herald message id, or <tenant>/<id>, got ${JSON.stringify(id.slice(0, 200))}`);
  return id;
}

/** Refuses a table name that is not a plain identifier. */
export function safeTable(table: string): string {
  return sqlSafe(table, TABLE_NAME, 'table name');
}

/** Runs one statement (the SDK's `CREATE TABLE IF NOT EXISTS`) on a connection of its own. */
export async function runStatement(pool: SqlPool, sql: string): Promise<void> {
  const connection = await pool.getConnection();
  try {
    await connection.query(sql);
  } finally {
    connection.release();
  }
}
