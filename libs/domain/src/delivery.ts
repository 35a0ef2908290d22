import { nextAttemptDelayMs, type BackoffPolicy } from './retry-policy';

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

/** One attempt of one delivery, as a job names it. A stale or duplicate ref no longer matches the row. */
export interface DeliveryJobRef {
  deliveryId: number;
  /** Replays start a new generation; a ref of an older one changes nothing. */
  generation: number;
  /** Attempts already made in this generation; the job makes attempt `attempt + 1`. */
  attempt: number;
  runAt: Date;
}

/** What a delivery becomes after an attempt. */
export type AttemptVerdict = { kind: 'delivered' } | { kind: 'dead'; reason: string } | { kind: 'retry'; runAt: Date };

const FALLBACK_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 1_000 };

/**
 * The retry/dead decision for attempt `attemptNo`: delivered on success; dead after a permanent
 * failure, a 410, or the last attempt; otherwise retried after the backoff (or a longer
 * Retry-After). Without a subscription (deleted mid-send) the attempt counts as the last.
 */
export function attemptVerdict(
  result: AttemptResult,
  attemptNo: number,
  subscription: { maxAttempts: number; backoff: BackoffPolicy } | undefined,
  now: Date,
  random?: () => number,
): AttemptVerdict {
  if (result.ok) return { kind: 'delivered' };
  const error = result.error ?? null;
  if (result.permanent || result.gone) return { kind: 'dead', reason: error ?? 'permanent failure' };
  if (attemptNo >= (subscription?.maxAttempts ?? attemptNo)) return { kind: 'dead', reason: `gave up after ${attemptNo} attempts: ${error ?? 'failed'}` };
  const delay = nextAttemptDelayMs(subscription?.backoff ?? FALLBACK_BACKOFF, attemptNo, result.retryAfterMs, random);
  return { kind: 'retry', runAt: new Date(now.getTime() + delay) };
}

/** Added to a send's own timeout: a lease outlives the send it covers. */
export const LEASE_MARGIN_MS = 5_000;

/** The send timeouts a lease must cover when a subscription sets none. */
export interface SendTimeouts {
  webhookTimeoutMs: number;
  amqpConfirmTimeoutMs: number;
}

/**
 * How long a lease on a delivery to `target` lasts: longer than the send's own timeout, so it is
 * never taken from a live sender, and not much longer, so a killed sender's delivery is retried soon.
 */
export function deliveryLeaseMs(target: Target | undefined, timeouts: SendTimeouts): number {
  return (target?.type === 'webhook' ? target.timeoutMs ?? timeouts.webhookTimeoutMs : timeouts.amqpConfirmTimeoutMs) + LEASE_MARGIN_MS;
}

/**
 * The sequence a delivery of an ordered subscription joins: one per tenant and key, written
 * `<tenant>/<key>/` (a tenant never contains `/`). The closing `/` keeps trailing spaces of a key
 * significant: MySQL's PAD SPACE collations compare `k` and `k ` as equal.
 */
export function orderKeyOf(tenant: string, key: string): string {
  return `${tenant}/${key}/`;
}

/** The order key of a delivery to a subscription with `ordering`; null when it is not ordered. */
export function deliveryOrderKey(ordering: 'none' | 'key', tenant: string, key: string | null): string | null {
  return ordering === 'key' && key !== null ? orderKeyOf(tenant, key) : null;
}

/** The tenant and key of an order key (`orderKeyOf`). */
export function splitOrderKey(orderKey: string): { tenant: string; key: string } {
  const slash = orderKey.indexOf('/');
  return { tenant: orderKey.slice(0, slash), key: orderKey.slice(slash + 1, -1) };
}
