import { bigint, datetime, index, mysqlTable, varchar } from 'drizzle-orm/mysql-core';

/** Mirrors migrations/0007_audit_log.sql and 0008's tenant (the DDL source of truth); a test compares them. */
export const auditLog = mysqlTable(
  'audit_log',
  {
    id: bigint('id', { mode: 'number', unsigned: true }).autoincrement().primaryKey(),
    at: datetime('at', { mode: 'date', fsp: 3 }).notNull(),
    actor: varchar('actor', { length: 64 }).notNull(),
    action: varchar('action', { length: 40 }).notNull(),
    targetType: varchar('target_type', { length: 16 }).notNull(),
    targetId: varchar('target_id', { length: 128 }).notNull(),
    /** 0008: the tenant of the message acted on; null for a subscription. */
    tenant: varchar('tenant', { length: 64 }),
    reason: varchar('reason', { length: 500 }),
    outcome: varchar('outcome', { length: 200 }).notNull(),
  },
  (t) => [index('ix_audit_log_target').on(t.targetType, t.targetId, t.id), index('ix_audit_log_tenant').on(t.tenant, t.id)],
);

export type AuditRow = typeof auditLog.$inferSelect;
