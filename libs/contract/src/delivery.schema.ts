import { Type } from '@sinclair/typebox';
import { DELIVERY_STATUSES, TARGET_TYPES } from '@herald/domain';
import { StringEnum, Timestamp } from './common.schema';

export const DeliveryStatus = StringEnum(DELIVERY_STATUSES);

export const DeliveryAttempt = Type.Object({
  generation: Type.Integer({ description: 'replay generation: 0 for the first run, +1 per redeliver' }),
  attempt: Type.Integer(),
  startedAt: Timestamp,
  durationMs: Type.Integer(),
  ok: Type.Boolean(),
  statusCode: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  responseExcerpt: Type.Union([Type.String(), Type.Null()], { description: 'first 1 KiB of the webhook response' }),
});

export const DeliveryDetail = Type.Object({
  id: Type.Integer(),
  subscriptionId: Type.String(),
  targetType: StringEnum(TARGET_TYPES),
  status: DeliveryStatus,
  attempts: Type.Integer(),
  lastError: Type.Union([Type.String(), Type.Null()]),
  lastStatusCode: Type.Union([Type.Integer(), Type.Null()]),
  nextAttemptAt: Type.Union([Timestamp, Type.Null()], { description: 'null on a pending delivery of an ordered subscription: it waits for an earlier message of its key' }),
  deliveredAt: Type.Union([Timestamp, Type.Null()]),
  deadAt: Type.Union([Timestamp, Type.Null()]),
  skippedAt: Type.Union([Timestamp, Type.Null()], { description: 'when an admin skipped this dead delivery of an ordered key, letting the key move on' }),
  attemptsLog: Type.Array(DeliveryAttempt, { description: 'newest first' }),
});

export const DeliveryList = Type.Object({ items: Type.Array(DeliveryDetail) });

export const RedeliverBody = Type.Object(
  {
    all: Type.Optional(Type.Boolean({ description: 'true requeues delivered deliveries too, not only the dead ones' })),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500, pattern: '^[^\\u0000-\\u001F\\u007F]*$', description: 'why, kept in the audit log' })),
  },
  { additionalProperties: false },
);
