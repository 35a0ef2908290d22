import { Type, type Static } from '@sinclair/typebox';
import { CHECK_ANSWERS, CHECK_POLICY_LIMITS, CHECKS_EXHAUSTED_POLICIES, DELIVERY_STATUSES, MESSAGE_STATUSES } from '@herald/domain';
import { MessageId, StringEnum, Timestamp, Topic } from './common.schema';

const limits = CHECK_POLICY_LIMITS;

export const MessageStatus = StringEnum(MESSAGE_STATUSES, {
  description: 'prepared → confirmed → delivered · prepared → cancelled · prepared → unresolved · confirmed → failed',
});

export const ChecksExhaustedPolicy = StringEnum(CHECKS_EXHAUSTED_POLICIES, {
  description: 'At maxChecks: `rollback` cancels the message, `hold` moves it to `unresolved` for a person to decide',
});

export const HeaderMap = Type.Record(
  Type.String({ pattern: '^[A-Za-z0-9-]{1,64}$' }),
  Type.String({ maxLength: 1024, pattern: '^[\\t\\x20-\\x7E]*$', description: 'printable ASCII or tab (what every HTTP client can send as a header value)' }),
  {
    maxProperties: 32,
    additionalProperties: false,
    description: 'Extra headers for every delivery: up to 32 names of A-Z a-z 0-9 - (1–64 characters), values up to 1024 characters of printable ASCII or tab, 16 KiB in all',
    examples: [{ 'x-tenant': 'acme' }],
  },
);

export const PrepareMessageBody = Type.Object(
  {
    id: Type.Optional({ ...MessageId, description: `Client-chosen id for idempotent retries: ${MessageId.description}. Generated when absent.` }),
    topic: Topic,
    payload: Type.Unknown({ description: 'Any JSON value; delivered as the webhook body / AMQP message body', examples: [{ orderId: 1001, amount: 4200 }] }),
    key: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: '^[\\x20-\\x7E]*$', description: 'Business key: 1–256 characters of printable ASCII (it is sent as the herald-key header)', examples: ['order-1001'] })),
    headers: Type.Optional(HeaderMap),
    checkUrl: Type.Optional(Type.String({ maxLength: 2048, format: 'uri', pattern: '^[Hh][Tt][Tt][Pp][Ss]?://', description: 'Absolute http(s) URL Herald calls to ask whether the transaction committed; required unless confirm is true', examples: ['https://orders.internal/herald/check'] })),
    checkAfterMs: Type.Optional(Type.Integer({ minimum: limits.checkAfterMs.min, maximum: limits.checkAfterMs.max, description: 'Wait before the first check (default 30000)' })),
    checkIntervalMs: Type.Optional(Type.Integer({ minimum: limits.checkIntervalMs.min, maximum: limits.checkIntervalMs.max, description: 'Wait after an unknown answer; grows exponentially, capped (default 10000)' })),
    maxChecks: Type.Optional(Type.Integer({ minimum: limits.maxChecks.min, maximum: limits.maxChecks.max, description: 'Checks before onChecksExhausted applies (default 15)' })),
    onChecksExhausted: Type.Optional(ChecksExhaustedPolicy),
    delayMs: Type.Optional(Type.Integer({ minimum: limits.delayMs.min, maximum: limits.delayMs.max, description: 'Delay the first delivery attempt after confirmation' })),
    confirm: Type.Optional(Type.Boolean({ description: 'true publishes directly: the message is stored confirmed, no prepare, no check-back' })),
  },
  {
    additionalProperties: false,
    examples: [
      { id: 'order-1001:paid', topic: 'order.paid', key: 'order-1001', payload: { orderId: 1001, amount: 4200 }, checkUrl: 'https://orders.internal/herald/check' },
    ],
  },
);
export type PrepareMessageBody = Static<typeof PrepareMessageBody>;

export const Delivery = Type.Object({
  subscriptionId: Type.String(),
  status: StringEnum(DELIVERY_STATUSES),
  attempts: Type.Integer({ description: 'attempts made in the current replay generation' }),
  lastError: Type.Union([Type.String(), Type.Null()]),
});

export const CheckAttempt = Type.Object({
  check: Type.Integer({ description: '1 for the first check' }),
  at: Timestamp,
  durationMs: Type.Integer(),
  answer: StringEnum(CHECK_ANSWERS, { description: 'anything but HTTP 200 with a valid status is unknown' }),
  statusCode: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()], { description: 'why the answer counted as unknown' }),
});

/** A team sharing Herald; every message belongs to one. */
export const Tenant = Type.String({ pattern: '^[a-z0-9_-]{1,64}$', description: 'A tenant: 1–64 characters of a-z 0-9 _ -' });

export const Message = Type.Object(
  {
    tenant: { ...Tenant, description: 'The tenant the message belongs to: that of the key that prepared it (`default` for messages stored before tenants)' },
    id: MessageId,
    topic: Topic,
    key: Type.Union([Type.String(), Type.Null()]),
    payload: Type.Unknown(),
    headers: Type.Record(Type.String(), Type.String()),
    status: MessageStatus,
    checkUrl: Type.Union([Type.String(), Type.Null()]),
    checkAfterMs: Type.Integer(),
    checkIntervalMs: Type.Integer(),
    maxChecks: Type.Integer(),
    onChecksExhausted: ChecksExhaustedPolicy,
    delayMs: Type.Integer(),
    checks: Type.Integer({ description: 'Check-back calls made so far' }),
    nextCheckAt: Type.Union([Timestamp, Type.Null()], { description: 'When the next check-back is due, while prepared' }),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    confirmedAt: Type.Union([Timestamp, Type.Null()]),
    cancelledAt: Type.Union([Timestamp, Type.Null()]),
    deliveries: Type.Array(Delivery, { description: 'One per matching subscription, created when the message is confirmed' }),
    checkAttempts: Type.Optional(
      Type.Array(CheckAttempt, { description: 'Every check-back call made, oldest first (on single-message answers, not in listings)' }),
    ),
  },
  { $id: 'Message' },
);
export type Message = Static<typeof Message>;

export const MessageIdParams = Type.Object({ id: MessageId });

/** On a message route: admins and viewers name the message's tenant; a producer's is always its own. */
export const TenantQuery = Type.Object(
  { tenant: Type.Optional({ ...Tenant, description: 'Admin and viewer: the tenant of the message (needed when several tenants hold the id). A producer may only name its own.' }) },
  { additionalProperties: false },
);

export const ListMessagesQuery = Type.Object(
  {
    tenant: Type.Optional({ ...Tenant, description: 'Admin and viewer: only this tenant\'s messages. A producer always sees only its own.' }),
    status: Type.Optional(MessageStatus),
    topic: Type.Optional(Topic),
    key: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: '^[\\x20-\\x7E]*$', description: 'Exact business key' })),
    createdAfter: Type.Optional({ ...Timestamp, description: 'Only messages created at or after this time' }),
    createdBefore: Type.Optional({ ...Timestamp, description: 'Only messages created before this time: with status=prepared, the transactions still open after it' }),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50, description: 'Page size, 1–200' })),
    cursor: Type.Optional(Type.String({ maxLength: 64, description: 'Opaque: the nextCursor of the previous page' })),
  },
  { additionalProperties: false },
);
export type ListMessagesQuery = Static<typeof ListMessagesQuery>;

export const MessageList = Type.Object({
  items: Type.Array(Type.Ref(Message)),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null on the last page' }),
});
