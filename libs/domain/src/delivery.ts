import type { MessageStatus } from './message-status';

/** Delivery states (DESIGN.md section 3): pending → delivered · pending → dead. */
export const DELIVERY_STATUSES = ['pending', 'delivered', 'dead'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export const TARGET_TYPES = ['webhook', 'rabbitmq'] as const;
export type TargetType = (typeof TARGET_TYPES)[number];

export interface WebhookTarget {
  type: 'webhook';
  url: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export interface RabbitMqTarget {
  type: 'rabbitmq';
  exchange: string;
  routingKey?: string;
}

export type Target = WebhookTarget | RabbitMqTarget;

/**
 * The status a committed message has, given its deliveries: `failed` while any delivery is
 * dead, `delivered` once all are delivered, `confirmed` otherwise (including when no
 * subscription matched its topic).
 */
export function committedStatus(deliveries: ReadonlyArray<{ status: DeliveryStatus }>): MessageStatus {
  if (deliveries.some((d) => d.status === 'dead')) return 'failed';
  if (deliveries.length > 0 && deliveries.every((d) => d.status === 'delivered')) return 'delivered';
  return 'confirmed';
}

/** What one attempt of a delivery came to. */
export interface AttemptResult {
  ok: boolean;
  durationMs: number;
  statusCode?: number;
  error?: string;
  responseExcerpt?: string;
  /** From a Retry-After header, in ms. */
  retryAfterMs?: number;
  /** The endpoint said 410 Gone: stop sending to it. */
  gone?: boolean;
  /** A failure no retry can fix (e.g. a missing exchange is not; a malformed target is). */
  permanent?: boolean;
}
