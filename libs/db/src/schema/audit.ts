import { bigint, datetime, index, mysqlTable, varchar } from 'drizzle-orm/mysql-core';

/** Mirrors migrations/0007_audit_log.sql (the DDL source of truth); a test compares them. */
export const auditLog = mysqlTable(
  'audit_log',
  {
    id: bigint('id', { mode: 'number', unsigned: true }).autoincrement().primaryKey(),
    at: datetime('at', { mode: 'date', fsp: 3 }).notNull(),
    actor: varchar('actor', { length: 64 }).notNull(),
    action: varchar('action', { length: 40 }).notNull(),
    targetType: varchar('target_type', { length: 16 }).notNull(),
    targetId: varchar('target_id', { length: 128 }).notNull(),
    reason: varchar('reason', { length: 500 }),
    outcome: varchar('outcome', { length: 200 }).notNull(),
  },
  (t) => [index('ix_audit_log_target').on(t.targetType, t.targetId, t.id)],
);

export type AuditRow = typeof auditLog.$inferSelect;
