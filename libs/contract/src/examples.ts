import type { Static } from '@sinclair/typebox';
import type { DeliveryList } from './delivery.schema';
import type { Message, MessageList } from './message.schema';
import type { Subscription } from './subscription.schema';

// Whole-object examples for the OpenAPI document. Swagger UI would otherwise assemble one from
// each field's own example, and show states Herald never produces (a prepared message that is
// confirmed and cancelled at once). Each one here is a state a client can really see.

const policy = { checkAfterMs: 30000, checkIntervalMs: 10000, maxChecks: 15, onChecksExhausted: 'rollback' as const, delayMs: 0 };
const base = {
  id: 'order-1001:paid',
  tenant: 'orders',
  topic: 'order.paid',
  key: 'order-1001',
  payload: { orderId: 1001, amount: 4200 },
  headers: { 'x-tenant': 'acme' },
  checkUrl: 'https://orders.internal/herald/check',
  ...policy,
  createdAt: '2026-11-23T10:15:30.123Z',
};

export const PreparedMessageExample: Message = {
  ...base,
  status: 'prepared',
  checks: 0,
  nextCheckAt: '2026-11-23T10:16:00.123Z',
  updatedAt: '2026-11-23T10:15:30.123Z',
  confirmedAt: null,
  cancelledAt: null,
  deliveries: [],
};

export const ConfirmedMessageExample: Message = {
  ...base,
  status: 'confirmed',
  checks: 0,
  nextCheckAt: null,
  updatedAt: '2026-11-23T10:15:31.020Z',
  confirmedAt: '2026-11-23T10:15:31.020Z',
  cancelledAt: null,
  deliveries: [{ subscriptionId: 'sub_0123456789abcdef0123', status: 'pending', attempts: 0, lastError: null }],
};

export const CancelledMessageExample: Message = {
  ...base,
  status: 'cancelled',
  checks: 0,
  nextCheckAt: null,
  updatedAt: '2026-11-23T10:15:31.020Z',
  confirmedAt: null,
  cancelledAt: '2026-11-23T10:15:31.020Z',
  deliveries: [],
};

/** A message confirmed after one check-back, delivered on the second attempt. */
export const DeliveredMessageExample: Message = {
  ...base,
  status: 'delivered',
  checks: 1,
  nextCheckAt: null,
  updatedAt: '2026-11-23T10:16:02.480Z',
  confirmedAt: '2026-11-23T10:16:00.310Z',
  cancelledAt: null,
  deliveries: [{ subscriptionId: 'sub_0123456789abcdef0123', status: 'delivered', attempts: 2, lastError: null }],
  checkAttempts: [{ check: 1, at: '2026-11-23T10:16:00.123Z', durationMs: 187, answer: 'commit', statusCode: 200, error: null }],
};

export const MessageListExample: Static<typeof MessageList> = {
  items: [CancelledMessageExample, { ...ConfirmedMessageExample, id: 'order-1000:paid', key: 'order-1000', payload: { orderId: 1000, amount: 1250 } }],
  nextCursor: 'eyJzZXEiOjQxfQ',
};

export const DeliveryListExample: Static<typeof DeliveryList> = {
  items: [
    {
      id: 42,
      subscriptionId: 'sub_0123456789abcdef0123',
      targetType: 'webhook',
      status: 'delivered',
      attempts: 2,
      lastError: null,
      lastStatusCode: 204,
      nextAttemptAt: null,
      deliveredAt: '2026-11-23T10:16:02.480Z',
      deadAt: null,
      skippedAt: null,
      attemptsLog: [
        { generation: 0, attempt: 2, startedAt: '2026-11-23T10:16:02.400Z', durationMs: 80, ok: true, statusCode: 204, error: null, responseExcerpt: '' },
        { generation: 0, attempt: 1, startedAt: '2026-11-23T10:16:00.400Z', durationMs: 95, ok: false, statusCode: 503, error: 'HTTP 503', responseExcerpt: 'upstream busy' },
      ],
    },
  ],
};

const subscription = {
  id: 'sub_0123456789abcdef0123',
  name: 'coupons',
  topic: 'order.paid',
  target: { type: 'webhook' as const, url: 'https://coupons.internal/hooks/herald' },
  maxAttempts: 10,
  backoff: { initialMs: 1000, maxMs: 600000 },
  enabled: true,
  ordering: 'none' as const,
  disabledReason: null,
  createdAt: '2026-11-23T10:00:00.000Z',
  updatedAt: '2026-11-23T10:00:00.000Z',
};

/** As created: the only answer (with rotation) that carries the signing secret. */
export const CreatedSubscriptionExample: Static<typeof Subscription> = { ...subscription, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' };
export const SubscriptionExample: Static<typeof Subscription> = subscription;
