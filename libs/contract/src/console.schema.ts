import { Type, type Static } from '@sinclair/typebox';
import { MESSAGE_ID_PATTERN, StringEnum, Timestamp } from './common.schema';

/** Why an operator confirms, cancels or redelivers; kept in the audit log. */
export const Reason = Type.String({ minLength: 1, maxLength: 500, pattern: '^[^\\u0000-\\u001F\\u007F]*$', description: '1–500 characters without control characters; kept in the audit log' });

export const DecisionBody = Type.Object(
  { reason: Type.Optional({ ...Reason, description: 'An operator’s reason (admin), kept in the audit log; producers send no body' }) },
  { additionalProperties: false },
);
export type DecisionBody = Static<typeof DecisionBody>;

export const AuditEntry = Type.Object({
  id: Type.Integer(),
  at: Timestamp,
  actor: Type.String({ description: 'the name of the key that acted' }),
  action: Type.String({ description: '`<target type>.<verb>`, e.g. `message.confirm`, `subscription.disable`', examples: ['message.cancel'] }),
  targetType: StringEnum(['message', 'subscription'] as const),
  targetId: Type.String(),
  tenant: Type.Union([Type.String(), Type.Null()], { description: 'the tenant of the message acted on; null for a subscription' }),
  reason: Type.Union([Type.String(), Type.Null()]),
  outcome: Type.String({ description: 'what came of it, e.g. `prepared → cancelled`, `requeued 3`, `not found`' }),
});

export const AuditList = Type.Object({
  items: Type.Array(AuditEntry, { description: 'newest first' }),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null on the last page' }),
});

export const ListAuditQuery = Type.Object(
  {
    targetType: Type.Optional(StringEnum(['message', 'subscription'] as const)),
    targetId: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: MESSAGE_ID_PATTERN, description: 'with targetType: one message’s or subscription’s entries (an id: 1–128 characters of A-Z a-z 0-9 _ : -)' })),
    tenant: Type.Optional(Type.String({ pattern: '^[a-z0-9_-]{1,64}$', description: 'only actions on this tenant’s messages' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50, description: 'Page size, 1–200' })),
    cursor: Type.Optional(Type.String({ maxLength: 64, description: 'Opaque: the nextCursor of the previous page' })),
  },
  { additionalProperties: false },
);

export const MinuteRates = Type.Object({
  minutes: Type.Array(Timestamp, { description: 'start of each minute, oldest first; the last is the current, partial minute' }),
  created: Type.Array(Type.Integer(), { description: 'messages stored (prepared or published) in each minute' }),
  confirmed: Type.Array(Type.Integer(), { description: 'messages confirmed in each minute' }),
  delivered: Type.Array(Type.Integer(), { description: 'deliveries delivered in each minute' }),
});

export const DeadCountQuery = Type.Object(
  {
    since: Type.Optional({ ...Timestamp, description: 'only deliveries that died at or after this time' }),
    until: Type.Optional({ ...Timestamp, description: 'only deliveries that died before this time' }),
  },
  { additionalProperties: false },
);

export const DeadCount = Type.Object({ dead: Type.Integer({ description: 'dead deliveries a redeliver with the same range would requeue now' }) });

export const Caller = Type.Object({
  name: Type.String({ description: 'the key’s name' }),
  role: StringEnum(['admin', 'viewer', 'producer'] as const, { description: 'the key’s role: a viewer may read everything and change nothing', examples: ['viewer'] }),
});

export const SubscriptionHealth = Type.Object({
  subscriptionId: Type.String(),
  delivered: Type.Integer({ description: 'deliveries delivered in the window' }),
  dead: Type.Integer({ description: 'deliveries that died in the window' }),
  failureRate: Type.Number({ description: 'dead / (delivered + dead) in the window; 0 when there were none' }),
  lastError: Type.Union([Type.String(), Type.Null()], { description: 'the error of the delivery that died last' }),
  lastDeadAt: Type.Union([Timestamp, Type.Null()]),
});

export const SubscriptionHealthList = Type.Object({
  windowMs: Type.Integer(),
  items: Type.Array(SubscriptionHealth),
});

export const SubscriptionHealthQuery = Type.Object(
  { windowMs: Type.Optional(Type.Integer({ minimum: 60_000, maximum: 7 * 24 * 3600_000, default: 3600_000, description: 'the window, 1 minute to 7 days (default 1 hour)' })) },
  { additionalProperties: false },
);
