import { bigint, datetime, int, mysqlTable, varchar } from 'drizzle-orm/mysql-core';

/** Mirrors migrations/0006_retention.sql: one row per purger name, its last run. */
export const purgeRuns = mysqlTable('purge_runs', {
  name: varchar('name', { length: 40 }).primaryKey(),
  lastRunAt: datetime('last_run_at', { mode: 'date', fsp: 3 }).notNull(),
  lastRunRemoved: int('last_run_removed', { unsigned: true }).notNull(),
  totalRemoved: bigint('total_removed', { mode: 'number', unsigned: true }).notNull(),
});

export type PurgeRunRow = typeof purgeRuns.$inferSelect;
