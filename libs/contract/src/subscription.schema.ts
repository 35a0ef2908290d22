import { Type, type Static } from '@sinclair/typebox';
import { DELIVERY_LIMITS, SUBSCRIPTION_ORDERINGS, TOPIC_PATTERN_GRAMMAR } from '@herald/domain';
import { HeaderMap } from './message.schema';
import { StringEnum, Timestamp } from './common.schema';

const L = DELIVERY_LIMITS;

export const SubscriptionId = Type.String({ pattern: '^sub_[a-f0-9]{20}$', description: 'sub_ and 20 hex characters', examples: ['sub_0123456789abcdef0123'] });

export const TopicPattern = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: TOPIC_PATTERN_GRAMMAR,
  description: 'an exact topic or an AMQP-style pattern: dot-separated words, `*` for one word, `#` for zero or more',
  examples: ['order.paid', 'order.*', 'order.#'],
});

export const WebhookTarget = Type.Object(
  {
    type: Type.Literal('webhook'),
    url: Type.String({ maxLength: 2048, format: 'uri', pattern: '^[Hh][Tt][Tt][Pp][Ss]?://', description: 'absolute http(s) URL that receives the POST', examples: ['https://coupons.internal/hooks/herald'] }),
    headers: Type.Optional(HeaderMap),
    timeoutMs: Type.Optional(Type.Integer({ minimum: L.timeoutMs.min, maximum: L.timeoutMs.max, description: 'Total time allowed per attempt (default HERALD_WEBHOOK_TIMEOUT_MS)' })),
  },
  { $id: 'WebhookTarget', additionalProperties: false },
);

export const RabbitMqTarget = Type.Object(
  {
    type: Type.Literal('rabbitmq'),
    exchange: Type.String({ maxLength: 255, pattern: '^[A-Za-z0-9_.:-]*$', description: 'exchange name (A-Z a-z 0-9 _ . : -); empty for the default exchange', examples: ['orders'] }),
    routingKey: Type.Optional(Type.String({ maxLength: 255, pattern: '^[^\\u0000-\\u001F\\u007F]*$', description: 'routing key without control characters; default: the message topic' })),
  },
  { $id: 'RabbitMqTarget', additionalProperties: false },
);

// oneOf with a discriminator, so a bad target is reported against the branch its `type` names.
// `type: 'object'` first: the discriminator must never look inside a non-object (it threw → 500).
// The branches carry an $id so the OpenAPI document names them (a discriminator selects named
// schemas only); the swagger plugin adds the mapping there, which Ajv itself does not accept.
export const Target = Type.Unsafe<Static<typeof WebhookTarget> | Static<typeof RabbitMqTarget>>({
  type: 'object',
  required: ['type'],
  oneOf: [WebhookTarget, RabbitMqTarget],
  discriminator: { propertyName: 'type' },
  description: 'Where deliveries go: `webhook` or `rabbitmq`',
});

export const Backoff = Type.Object(
  {
    initialMs: Type.Optional(Type.Integer({ minimum: L.backoffMs.min, maximum: L.backoffMs.max, description: 'wait after the first failure (default 1000); doubles each attempt, with jitter' })),
    maxMs: Type.Optional(Type.Integer({ minimum: L.backoffMs.min, maximum: L.backoffMs.max, description: 'cap on the wait (default 3600000)' })),
  },
  { additionalProperties: false },
);

export const Ordering = StringEnum(SUBSCRIPTION_ORDERINGS, {
  description:
    '`none` (default): deliveries run in parallel. `key`: messages with the same `key` reach this subscription one at a time, in the order their confirms (or direct publishes) committed; a dead delivery blocks its key until it is redelivered or skipped. Messages without a key are not ordered. A change applies to deliveries created from then on.',
});

export const CreateSubscriptionBody = Type.Object(
  {
    // Bidi overrides and zero-width characters would make a name read as another in a console or log.
    name: Type.String({
      minLength: 1,
      maxLength: 200,
      pattern: '^[^\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u061C\\u180E\\u200B-\\u200F\\u2028-\\u202E\\u2060-\\u206F\\uFEFF]*$',
      description: '1–200 characters without control, invisible (zero-width) or text-direction characters',
    }),
    topic: TopicPattern,
    target: Target,
    maxAttempts: Type.Optional(Type.Integer({ minimum: L.maxAttempts.min, maximum: L.maxAttempts.max, description: 'attempts before the delivery is dead (default 12)' })),
    backoff: Type.Optional(Backoff),
    enabled: Type.Optional(Type.Boolean({ description: 'default true' })),
    ordering: Type.Optional(Ordering),
  },
  {
    additionalProperties: false,
    examples: [{ name: 'coupons', topic: 'order.paid', target: { type: 'webhook', url: 'https://coupons.internal/hooks/herald' }, maxAttempts: 10, backoff: { initialMs: 1000, maxMs: 600000 } }],
  },
);
export type CreateSubscriptionBody = Static<typeof CreateSubscriptionBody>;

export const PatchSubscriptionBody = Type.Partial(CreateSubscriptionBody, { additionalProperties: false, minProperties: 1 });
export type PatchSubscriptionBody = Static<typeof PatchSubscriptionBody>;

export const Subscription = Type.Object(
  {
    id: SubscriptionId,
    name: Type.String(),
    topic: Type.String(),
    target: Target,
    maxAttempts: Type.Integer(),
    backoff: Type.Object({ initialMs: Type.Integer(), maxMs: Type.Integer() }),
    enabled: Type.Boolean(),
    ordering: Ordering,
    disabledReason: Type.Union([Type.String(), Type.Null()], { description: 'why Herald disabled it, e.g. the endpoint answered 410 Gone' }),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    secret: Type.Optional(Type.String({ description: 'the whsec_ signing secret: shown on create and on rotation only', examples: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'] })),
  },
  { $id: 'Subscription' },
);

export const SubscriptionList = Type.Object({
  items: Type.Array(Type.Ref(Subscription)),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});

export const SubscriptionIdParams = Type.Object({ id: SubscriptionId });

export const ListSubscriptionsQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const RotateSecretBody = Type.Object(
  { graceMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 24 * 3600_000, description: 'how long the old secret keeps signing too (default 24 h)' })) },
  { additionalProperties: false },
);

export const RotatedSecret = Type.Object({
  secret: Type.String(),
  previousSecretExpiresAt: Timestamp,
});

export const BulkRedeliverBody = Type.Object(
  {
    since: Type.Optional({ ...Timestamp, description: 'only deliveries that died at or after this time' }),
    until: Type.Optional({ ...Timestamp, description: 'only deliveries that died before this time' }),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500, pattern: '^[^\\u0000-\\u001F\\u007F]*$', description: 'why, kept in the audit log' })),
  },
  { additionalProperties: false },
);

export const Requeued = Type.Object({ requeued: Type.Integer({ description: 'deliveries put back to pending' }) });

const Reason = Type.String({ minLength: 1, maxLength: 500, pattern: '^[^\\u0000-\\u001F\\u007F]*$', description: 'why, kept in the audit log' });

export const BlockedKey = Type.Object({
  tenant: Type.String({ description: 'the tenant of the messages of this key' }),
  key: Type.String(),
  deliveryId: Type.Integer({ description: 'the dead delivery at the head of the key' }),
  messageId: Type.String({ description: 'its message (within `tenant`)' }),
  deadAt: Timestamp,
  lastError: Type.Union([Type.String(), Type.Null()]),
  lastStatusCode: Type.Union([Type.Integer(), Type.Null()]),
  waiting: Type.Integer({ description: 'deliveries of the key waiting behind it' }),
});

export const BlockedKeyList = Type.Object({
  items: Type.Array(BlockedKey, { description: 'oldest block first' }),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});

export const ListBlockedKeysQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const SkipKeyBody = Type.Object(
  {
    tenant: { ...Type.String({ pattern: '^[a-z0-9_-]{1,64}$' }), description: 'the tenant of the key, as the blocked-key list gives it' },
    key: Type.String({ minLength: 1, maxLength: 256, pattern: '^[\\x20-\\x7E]*$', description: 'the blocked key' }),
    reason: Reason,
  },
  { additionalProperties: false, examples: [{ tenant: 'default', key: 'order-1001', reason: 'the coupon service rejects this order for good; later messages of it may go' }] },
);

export const SkippedKey = Type.Object({
  deliveryId: Type.Integer({ description: 'the skipped delivery: it stays dead, marked skipped' }),
  messageId: Type.String(),
  nextDeliveryId: Type.Union([Type.Integer(), Type.Null()], { description: 'the key\'s next delivery, now due (null if none waited)' }),
});
