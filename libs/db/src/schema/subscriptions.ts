import { boolean, datetime, index, int, mysqlTable, smallint, text, varchar } from 'drizzle-orm/mysql-core';

/** Mirrors migrations/0002_deliveries.sql (the DDL source of truth); a test compares them. */
export const subscriptions = mysqlTable(
  'subscriptions',
  {
    id: varchar('id', { length: 40 }).primaryKey(),
    name: varchar('name', { length: 200 }).notNull(),
    topicPattern: varchar('topic_pattern', { length: 200 }).notNull(),
    targetType: varchar('target_type', { length: 16 }).notNull(),
    target: text('target').notNull(),
    maxAttempts: smallint('max_attempts', { unsigned: true }).notNull(),
    backoffInitialMs: int('backoff_initial_ms', { unsigned: true }).notNull(),
    backoffMaxMs: int('backoff_max_ms', { unsigned: true }).notNull(),
    enabled: boolean('enabled').notNull(),
    disabledReason: varchar('disabled_reason', { length: 500 }),
    secret: varchar('secret', { length: 100 }),
    previousSecret: varchar('previous_secret', { length: 100 }),
    previousSecretExpiresAt: datetime('previous_secret_expires_at', { mode: 'date', fsp: 3 }),
    createdAt: datetime('created_at', { mode: 'date', fsp: 3 }).notNull(),
    updatedAt: datetime('updated_at', { mode: 'date', fsp: 3 }).notNull(),
    /** 0009: `none` or `key` (per-key ordered delivery). */
    ordering: varchar('ordering', { length: 8 }).notNull().default('none'),
  },
  (t) => [index('ix_subscriptions_enabled').on(t.enabled), index('ix_subscriptions_created').on(t.createdAt, t.id)],
);

export type SubscriptionRow = typeof subscriptions.$inferSelect;
