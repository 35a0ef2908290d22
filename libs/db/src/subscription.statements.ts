import type { SubscriptionRow } from './schema/deliveries';
import { toBoolean, toDate, toDateOrNull } from './sql.runner';

/**
 * The subscriptions read on the hot path (every confirm's fan-out, every attempt's context) as
 * fixed text (see sql.runner.ts), each column aliased `s_…` so that it can share a row with a
 * delivery's and a message's columns. Schema order; a test compares them with the drizzle schema.
 */
export const SUBSCRIPTION_COLUMNS = [
  'id', 'name', 'topic_pattern', 'target_type', 'target', 'max_attempts', 'backoff_initial_ms', 'backoff_max_ms', 'enabled', 'disabled_reason',
  'secret', 'previous_secret', 'previous_secret_expires_at', 'created_at', 'updated_at',
] as const;

/** A `subscriptions` row as mysql2 returns it (connection.ts), under `SUBSCRIPTION_SELECT`'s aliases. */
export interface SubscriptionRecord {
  s_id: string;
  s_name: string;
  s_topic_pattern: string;
  s_target_type: string;
  s_target: string;
  s_max_attempts: number;
  s_backoff_initial_ms: number;
  s_backoff_max_ms: number;
  /** TINYINT(1). */
  s_enabled: number;
  s_disabled_reason: string | null;
  s_secret: string | null;
  s_previous_secret: string | null;
  s_previous_secret_expires_at: string | null;
  s_created_at: string;
  s_updated_at: string;
}

/** The select list of a whole subscription, for `FROM subscriptions s` or a join on it. */
export const SUBSCRIPTION_SELECT = SUBSCRIPTION_COLUMNS.map((c) => `s.${c} AS s_${c}`).join(', ');

export const SELECT_ENABLED_SUBSCRIPTIONS = `SELECT ${SUBSCRIPTION_SELECT} FROM subscriptions s WHERE s.enabled = TRUE`;

/** A subscription row as drizzle's `select().from(subscriptions)` gave it. */
export function toSubscriptionRow(r: SubscriptionRecord): SubscriptionRow {
  return {
    id: r.s_id,
    name: r.s_name,
    topicPattern: r.s_topic_pattern,
    targetType: r.s_target_type,
    target: r.s_target,
    maxAttempts: r.s_max_attempts,
    backoffInitialMs: r.s_backoff_initial_ms,
    backoffMaxMs: r.s_backoff_max_ms,
    enabled: toBoolean(r.s_enabled),
    disabledReason: r.s_disabled_reason,
    secret: r.s_secret,
    previousSecret: r.s_previous_secret,
    previousSecretExpiresAt: toDateOrNull(r.s_previous_secret_expires_at),
    createdAt: toDate(r.s_created_at),
    updatedAt: toDate(r.s_updated_at),
  };
}
