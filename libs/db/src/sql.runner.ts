import { format, type ResultSetHeader } from 'mysql2/promise';
import { DB_TIMEZONE } from './connection';

/**
 * Fixed SQL text for the hot statements (group commits, claims, attempt results).
 *
 * drizzle's builder walks every column and parameter of a statement through its `is()` checks
 * and value mappers each time it is built, which cost about a fifth of Herald's CPU under load
 * (a 200-row INSERT of 20 columns is 4,000 parameters). These statements are written once as
 * text with `?` placeholders instead, and run through the same drizzle database or transaction
 * object, so transactions, retries and errors behave as before: drizzle still wraps a driver
 * error in `DrizzleQueryError` with the driver's error (code, errno, `fatal`) as its `cause`.
 *
 * The values are escaped by mysql2's own `format`, which is what mysql2 does client-side with
 * `query(text, values)` anyway (it does not use server-side prepared statements there), with
 * the pool's settings: time zone `DB_TIMEZONE` (a Date is written as its UTC
 * `YYYY-MM-DD HH:MM:SS.mmm`, as drizzle wrote it; an invalid Date would become NULL where
 * drizzle threw, but these dates are all the clock plus whole milliseconds), objects never
 * expanded into `SET` lists. Quotes are escaped with backslashes, which holds because the
 * session's sql_mode (connection.ts) has no NO_BACKSLASH_ESCAPES — as it did for mysql2 before.
 * An array is written as a list, `(?)` for `IN`, and an array of arrays as row groups,
 * `VALUES ?` for a multi-row INSERT. The formatted text then goes to drizzle as raw SQL with no
 * parameters. Reaching the transaction's mysql2 connection directly would save mysql2's second
 * look at the text, but drizzle keeps its session private; this stays on its public API.
 */

/** A value a statement may carry: no plain objects, which mysql2 would expand into `a = …` lists. */
export type SqlParam = string | number | bigint | boolean | Date | null | SqlParam[];

/** The database or a transaction: whatever runs drizzle's raw SQL. */
export interface SqlExecutor {
  execute(query: string): Promise<unknown>;
}

/** `text` with its `?` placeholders replaced by the escaped `values`, as mysql2 would send it. */
export function formatSql(text: string, values: readonly SqlParam[]): string {
  return format(text, values as SqlParam[], false, DB_TIMEZONE);
}

/** Runs an INSERT, UPDATE or locking statement whose rows are not needed. */
export async function runSql(executor: SqlExecutor, text: string, values: readonly SqlParam[]): Promise<ResultSetHeader> {
  // drizzle's mysql2 session returns mysql2's own answer: [header or rows, fields].
  const [header] = (await executor.execute(formatSql(text, values))) as [ResultSetHeader, unknown];
  return header;
}

/** Runs a SELECT; rows come back keyed by column name (or alias), as mysql2 decodes them. */
export async function selectSql<Row>(executor: SqlExecutor, text: string, values: readonly SqlParam[]): Promise<Row[]> {
  const [rows] = (await executor.execute(formatSql(text, values))) as [Row[], unknown];
  return rows;
}

/** `CASE id WHEN ? THEN ? … END` for `n` rows: one column of a multi-row UPDATE. */
export function caseById(n: number): string {
  return `CASE id${' WHEN ? THEN ?'.repeat(n)} END`;
}

/*
 * Decoding, as drizzle's schema columns decode what the pool returns (`dateStrings`,
 * `bigNumberStrings`; see connection.ts): NULL stays null and is never passed to these.
 */

/** DATETIME(3) arrives as `YYYY-MM-DD HH:MM:SS.mmm` in UTC (drizzle's `datetime({ mode: 'date' })`). */
export function toDate(value: string): Date {
  return new Date(value.replace(' ', 'T') + 'Z');
}

export function toDateOrNull(value: string | null): Date | null {
  return value === null ? null : toDate(value);
}

/** BOOLEAN is TINYINT(1): 1 is true, anything else false (drizzle's `boolean()`). */
export function toBoolean(value: number | boolean): boolean {
  return typeof value === 'boolean' ? value : value === 1;
}

/** BIGINT arrives as a string (`bigNumberStrings`); `bigint({ mode: 'number' })` makes it a number. */
export function toNumber(value: string | number): number {
  return typeof value === 'number' ? value : Number(value);
}
