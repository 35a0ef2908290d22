import { getTableColumns, type InferInsertModel, type InferSelectModel } from 'drizzle-orm';
import type { MySqlTable } from 'drizzle-orm/mysql-core';
import { toBoolean, toDate, toNumber, type SqlParam } from './sql.runner';

/** How the pool's raw values (connection.ts: `dateStrings`, `bigNumberStrings`) become drizzle's. */
const DECODERS: Record<string, (value: never) => unknown> = {
  MySqlDateTime: toDate,
  MySqlBigInt64: (value: string | number) => BigInt(value),
  MySqlBigInt53: toNumber,
  MySqlBoolean: toBoolean,
};

/**
 * A table's fixed-text SQL pieces and row decoding, derived from its drizzle schema, so the hot
 * statements (sql.runner.ts) need no hand-written column lists or mappers of their own.
 */
export interface RowCodec<T extends MySqlTable> {
  /** Column names in schema order. */
  readonly columns: readonly string[];
  /** `alias.column [AS prefix_column], …` for a SELECT. */
  readonly select: string;
  /** `INSERT INTO table (…) VALUES ?` of every column but the AUTO_INCREMENT one(s). */
  readonly insert: string;
  /** One row of `insert`, in its column order. */
  values(row: InferInsertModel<T>): SqlParam[];
  /** A raw row of `select` as drizzle's `select().from(table)` would give it. */
  decode(record: object): InferSelectModel<T>;
}

export function rowCodec<T extends MySqlTable>(table: T, name: string, alias: string, prefix = ''): RowCodec<T> {
  const fields = Object.entries(getTableColumns(table)).map(([key, column]) => ({
    key,
    column: column.name,
    raw: prefix + column.name,
    generated: (column as { autoIncrement?: boolean }).autoIncrement === true,
    decode: DECODERS[column.columnType] as ((value: unknown) => unknown) | undefined,
  }));
  const inserted = fields.filter((f) => !f.generated);
  return {
    columns: fields.map((f) => f.column),
    select: fields.map((f) => `${alias}.${f.column}${prefix ? ` AS ${f.raw}` : ''}`).join(', '),
    insert: `INSERT INTO ${name} (${inserted.map((f) => f.column).join(', ')}) VALUES ?`,
    values: (row) => inserted.map((f) => ((row as Record<string, unknown>)[f.key] ?? null) as SqlParam),
    decode(record) {
      const raw = record as Record<string, unknown>;
      const row: Record<string, unknown> = {};
      for (const f of fields) {
        const value = raw[f.raw];
        row[f.key] = value === null || value === undefined || !f.decode ? (value ?? null) : f.decode(value);
      }
      return row as InferSelectModel<T>;
    },
  };
}
