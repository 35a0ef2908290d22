/** How a subscription retries a failed delivery. */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 3_600_000 };

/**
 * 12 attempts with waits of 1 s, 2 s, 4 s … capped at 1 h keep retrying for about 2½ hours,
 * enough to ride out a deploy or a short outage of the consumer before the delivery is dead.
 */
export const DEFAULT_MAX_ATTEMPTS = 12;

export const DELIVERY_LIMITS = {
  maxAttempts: { min: 1, max: 100 },
  backoffMs: { min: 10, max: 24 * 3600_000 },
  timeoutMs: { min: 100, max: 120_000 },
} as const;

/**
 * Wait before attempt `failedAttempts + 1`: exponential from `initialMs`, capped at `maxMs`,
 * with "equal jitter" (half fixed, half random) so that many deliveries failing together do not
 * retry together. `random` is injectable for tests.
 */
export function backoffDelayMs(policy: BackoffPolicy, failedAttempts: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, failedAttempts - 1);
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(exponent, 40));
  return Math.round(base / 2 + (random() * base) / 2);
}

/** The longest wait a consumer's Retry-After may impose on Herald. */
export const MAX_RETRY_AFTER_MS = 24 * 3600_000;

/**
 * Parses an HTTP Retry-After value: delay-seconds or an HTTP-date. Returns milliseconds from
 * `now` (never negative, capped), or undefined when the header is absent or unusable.
 */
export function parseRetryAfter(value: string | undefined, now: Date): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
  if (!/[A-Za-z]/.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - now.getTime()), MAX_RETRY_AFTER_MS);
}

/** The wait before the next attempt: the backoff, or longer if the consumer asked for it. */
export function nextAttemptDelayMs(policy: BackoffPolicy, failedAttempts: number, retryAfterMs: number | undefined, random?: () => number): number {
  return Math.max(backoffDelayMs(policy, failedAttempts, random), retryAfterMs ?? 0);
}
