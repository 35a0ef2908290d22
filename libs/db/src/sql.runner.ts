import { format, type ResultSetHeader } from 'mysql2/promise';
import { DB_TIMEZONE } from './connection';

// Fixed SQL text for the hot statements, escaped by mysql2's own `format` (backslash escapes:
// the session's sql_mode has no NO_BACKSLASH_ESCAPES) and run as drizzle raw SQL, so errors and
// transactions behave as drizzle's. Why: docs/design.md, "Group commit".

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

/**
 * A guard for folded transactions (`?`: the count expected): it fails with ER_TOO_MANY_ROWS
 * unless the statement before it changed (or matched) exactly that many rows, so the statements
 * after it in the trip — its COMMIT among them — never run. Plain SQL, for MySQL and MariaDB alike.
 */
export const FAIL_UNLESS_ROW_COUNT = 'SELECT 1 INTO @herald_row_count_guard FROM (SELECT 1 UNION ALL SELECT 2) AS two_rows WHERE ROW_COUNT() <> ?';

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
