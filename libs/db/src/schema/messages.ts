import { bigint, char, datetime, index, int, longtext, mysqlTable, smallint, text, uniqueIndex, varchar } from 'drizzle-orm/mysql-core';

/**
 * Mirrors migrations/0001_messages.sql (with 0004's column, 0005's tenant, and 0006's and 0007's indexes), which is the source of truth for DDL (collations and
 * CHECK constraints are written there by hand). A test compares this with the live table.
 */
export const messages = mysqlTable(
  'messages',
  {
    seq: bigint('seq', { mode: 'bigint', unsigned: true }).autoincrement().primaryKey(),
    /** 0005: the tenant of the key that prepared it; `default` for messages stored before tenants. */
    tenant: varchar('tenant', { length: 64 }).notNull().default('default'),
    id: varchar('id', { length: 128 }).notNull(),
    topic: varchar('topic', { length: 200 }).notNull(),
    key: varchar('message_key', { length: 256 }),
    payload: longtext('payload').notNull(),
    headers: text('headers').notNull(),
    status: varchar('status', { length: 16 }).notNull(),
    checkUrl: varchar('check_url', { length: 2048 }),
    checkAfterMs: int('check_after_ms', { unsigned: true }).notNull(),
    checkIntervalMs: int('check_interval_ms', { unsigned: true }).notNull(),
    maxChecks: smallint('max_checks', { unsigned: true }).notNull(),
    onChecksExhausted: varchar('on_checks_exhausted', { length: 16 }).notNull(),
    delayMs: int('delay_ms', { unsigned: true }).notNull(),
    checks: smallint('checks', { unsigned: true }).notNull().default(0),
    nextCheckAt: datetime('next_check_at', { mode: 'date', fsp: 3 }),
    contentHash: char('content_hash', { length: 64 }).notNull(),
    createdAt: datetime('created_at', { mode: 'date', fsp: 3 }).notNull(),
    updatedAt: datetime('updated_at', { mode: 'date', fsp: 3 }).notNull(),
    confirmedAt: datetime('confirmed_at', { mode: 'date', fsp: 3 }),
    cancelledAt: datetime('cancelled_at', { mode: 'date', fsp: 3 }),
    /** 0004: the W3C traceparent of the span that stored the message (null with tracing off). */
    traceParent: varchar('trace_parent', { length: 55 }),
  },
  (t) => [
    uniqueIndex('uq_messages_id_tenant').on(t.id, t.tenant),
    index('ix_messages_tenant_seq').on(t.tenant, t.seq),
    index('ix_messages_status_next_check').on(t.status, t.nextCheckAt),
    index('ix_messages_status_seq').on(t.status, t.seq),
    index('ix_messages_topic_seq').on(t.topic, t.seq),
    // 0007: key search, time ranges and the last hour's rates.
    index('ix_messages_key_seq').on(t.key, t.seq),
    index('ix_messages_created').on(t.createdAt),
    index('ix_messages_confirmed').on(t.confirmedAt),
    // 0006: the purger's candidates, and the oldest terminal message of each status.
    index('ix_messages_status_updated').on(t.status, t.updatedAt),
  ],
);

export type MessageRow = typeof messages.$inferSelect;
export type NewMessageRow = typeof messages.$inferInsert;

/** Mirrors migrations/0003_check_attempts.sql (and 0005's message_seq). */
export const checkAttempts = mysqlTable(
  'check_attempts',
  {
    id: bigint('id', { mode: 'number', unsigned: true }).autoincrement().primaryKey(),
    /** 0005: the message's seq, which names it whatever its tenant. */
    messageSeq: bigint('message_seq', { mode: 'bigint', unsigned: true }).notNull(),
    messageId: varchar('message_id', { length: 128 }).notNull(),
    checkNo: smallint('check_no', { unsigned: true }).notNull(),
    startedAt: datetime('started_at', { mode: 'date', fsp: 3 }).notNull(),
    durationMs: int('duration_ms', { unsigned: true }).notNull(),
    answer: varchar('answer', { length: 16 }).notNull(),
    statusCode: smallint('status_code', { unsigned: true }),
    error: varchar('error', { length: 1000 }),
  },
  (t) => [index('ix_check_attempts_message_seq').on(t.messageSeq, t.id)],
);

export type CheckAttemptRow = typeof checkAttempts.$inferSelect;
