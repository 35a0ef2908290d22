import type { BackoffPolicy } from './retry-policy';
import type { Target } from './delivery';

/** `key`: deliveries of messages sharing a key go one at a time, in commit order (docs/design.md). */
export type SubscriptionOrdering = 'none' | 'key';
export const SUBSCRIPTION_ORDERINGS: readonly SubscriptionOrdering[] = ['none', 'key'];

/** A consumer's standing order: deliver messages whose topic matches `topic` to `target`. */
export interface Subscription {
  id: string;
  name: string;
  /** Exact topic, or AMQP-style pattern with `*` and `#`. */
  topic: string;
  target: Target;
  maxAttempts: number;
  backoff: BackoffPolicy;
  enabled: boolean;
  ordering: SubscriptionOrdering;
  /** Why Herald disabled it (e.g. the endpoint answered 410 Gone); null when a person did. */
  disabledReason: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/** Webhook signing keys of a subscription: the current one and, during rotation, the previous one. */
export interface SigningSecrets {
  secret: string;
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
}

/** Secrets in force at `now`: the old one keeps signing until its grace period ends. */
export function activeSecrets(secrets: SigningSecrets, now: Date): string[] {
  const keep = secrets.previousSecret && secrets.previousSecretExpiresAt && secrets.previousSecretExpiresAt > now;
  return keep ? [secrets.secret, secrets.previousSecret as string] : [secrets.secret];
}
