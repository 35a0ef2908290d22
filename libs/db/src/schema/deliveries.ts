import { bigint, boolean, datetime, index, int, mysqlTable, primaryKey, smallint, uniqueIndex, varchar } from 'drizzle-orm/mysql-core';

/** Mirror migrations/0002_deliveries.sql (and 0005's message_seq, 0009's ordering columns) (the DDL source of truth); a test compares them. */
export const deliveries = mysqlTable(
  'deliveries',
  {
    id: bigint('id', { mode: 'number', unsigned: true }).autoincrement().primaryKey(),
    /** 0005: the message's seq, which names it whatever its tenant (ids are unique per tenant only). */
    messageSeq: bigint('message_seq', { mode: 'bigint', unsigned: true }).notNull(),
    messageId: varchar('message_id', { length: 128 }).notNull(),
    subscriptionId: varchar('subscription_id', { length: 40 }).notNull(),
    targetType: varchar('target_type', { length: 16 }).notNull(),
    status: varchar('status', { length: 16 }).notNull(),
    attempts: smallint('attempts', { unsigned: true }).notNull().default(0),
    generation: smallint('generation', { unsigned: true }).notNull().default(0),
    nextAttemptAt: datetime('next_attempt_at', { mode: 'date', fsp: 3 }),
    leaseUntil: datetime('lease_until', { mode: 'date', fsp: 3 }),
    lastError: varchar('last_error', { length: 1000 }),
    lastStatusCode: smallint('last_status_code', { unsigned: true }),
    createdAt: datetime('created_at', { mode: 'date', fsp: 3 }).notNull(),
    updatedAt: datetime('updated_at', { mode: 'date', fsp: 3 }).notNull(),
    deliveredAt: datetime('delivered_at', { mode: 'date', fsp: 3 }),
    deadAt: datetime('dead_at', { mode: 'date', fsp: 3 }),
    /** 0009: `<tenant>/<key>/` while the delivery holds or awaits its key's turn on an ordered subscription. */
    orderKey: varchar('order_key', { length: 322 }),
    /** 0009: when a person skipped this dead delivery, releasing its key. */
    skippedAt: datetime('skipped_at', { mode: 'date', fsp: 3 }),
  },
  (t) => [
    uniqueIndex('uq_deliveries_message_seq_subscription').on(t.messageSeq, t.subscriptionId),
    index('ix_deliveries_status_next').on(t.status, t.nextAttemptAt),
    index('ix_deliveries_subscription_status').on(t.subscriptionId, t.status, t.deadAt),
    // 0007: the last hour's delivered rate, overall and per subscription.
    index('ix_deliveries_delivered').on(t.deliveredAt, t.subscriptionId),
    // 0009: a key's sequence of deliveries, in order.
    index('ix_deliveries_order').on(t.subscriptionId, t.orderKey, t.id),
  ],
);

/** Mirrors migrations/0009_key_ordering.sql: the per-key lock row of ordered subscriptions. */
export const deliveryOrderLocks = mysqlTable(
  'delivery_order_locks',
  {
    subscriptionId: varchar('subscription_id', { length: 40 }).notNull(),
    orderKey: varchar('order_key', { length: 322 }).notNull(),
    lastDeliveryId: bigint('last_delivery_id', { mode: 'number', unsigned: true }),
    lockedAt: datetime('locked_at', { mode: 'date', fsp: 3 }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.subscriptionId, t.orderKey] }), index('ix_delivery_order_locks_locked').on(t.lockedAt)],
);

export const deliveryAttempts = mysqlTable(
  'delivery_attempts',
  {
    id: bigint('id', { mode: 'number', unsigned: true }).autoincrement().primaryKey(),
    deliveryId: bigint('delivery_id', { mode: 'number', unsigned: true }).notNull(),
    generation: smallint('generation', { unsigned: true }).notNull(),
    attempt: smallint('attempt', { unsigned: true }).notNull(),
    startedAt: datetime('started_at', { mode: 'date', fsp: 3 }).notNull(),
    durationMs: int('duration_ms', { unsigned: true }).notNull(),
    ok: boolean('ok').notNull(),
    statusCode: smallint('status_code', { unsigned: true }),
    error: varchar('error', { length: 1000 }),
    responseExcerpt: varchar('response_excerpt', { length: 1024 }),
  },
  (t) => [index('ix_delivery_attempts_delivery').on(t.deliveryId, t.id)],
);

export type DeliveryRow = typeof deliveries.$inferSelect;
export type DeliveryAttemptRow = typeof deliveryAttempts.$inferSelect;
