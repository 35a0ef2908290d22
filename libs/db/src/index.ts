export * from './connection';
export * from './driver-errors';
export * from './migrator';
export * from './message.repository';
export * from './subscription.repository';
export * from './delivery.repository';
export { messages, checkAttempts, type MessageRow } from './schema/messages';
export { subscriptions, deliveries, deliveryAttempts } from './schema/deliveries';
export { WriteBatcher, WriteQueueFullError, DEFAULT_MAX_QUEUED_WRITES, STALLED_BATCH_MS, type OnWriteBatch, type WriteBatchFallback, type WriteBatchKind, type WriteBatchReport } from './write.batcher';
