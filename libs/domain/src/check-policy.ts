/** What happens when a prepared message has been checked `maxChecks` times with no decision. */
export const CHECKS_EXHAUSTED_POLICIES = ['rollback', 'hold'] as const;
export type ChecksExhaustedPolicy = (typeof CHECKS_EXHAUSTED_POLICIES)[number];

/** The check-back schedule of one message, fixed when it is prepared. */
export interface CheckPolicy {
  /** Wait after prepare before the first check. */
  checkAfterMs: number;
  /** Wait after an `unknown` answer; grows exponentially per check, capped. */
  checkIntervalMs: number;
  maxChecks: number;
  onChecksExhausted: ChecksExhaustedPolicy;
}

/**
 * Service defaults. 30 s before the first check gives a producer's local transaction ample
 * time to finish on a normal day (most confirms arrive within milliseconds, so a check is the
 * exception). 15 checks is RocketMQ's limit; with waits of 10 s, 20 s, 40 s … capped at 10 min
 * the 15th check comes about 91 minutes after prepare: a producer outage that long (a bad deploy,
 * a database failover) is still resolved by its own answer before the policy applies.
 */
export const DEFAULT_CHECK_POLICY: CheckPolicy = {
  checkAfterMs: 30_000,
  checkIntervalMs: 10_000,
  maxChecks: 15,
  onChecksExhausted: 'rollback',
};

/** Bounds that the API enforces on per-message overrides. */
export const CHECK_POLICY_LIMITS = {
  checkAfterMs: { min: 0, max: 7 * 24 * 3600_000 },
  checkIntervalMs: { min: 100, max: 24 * 3600_000 },
  maxChecks: { min: 1, max: 100 },
  delayMs: { min: 0, max: 7 * 24 * 3600_000 },
} as const;

/** Fill a message's check policy from what the producer sent and the service defaults. */
export function resolveCheckPolicy(requested: Partial<CheckPolicy>, defaults: CheckPolicy = DEFAULT_CHECK_POLICY): CheckPolicy {
  return {
    checkAfterMs: requested.checkAfterMs ?? defaults.checkAfterMs,
    checkIntervalMs: requested.checkIntervalMs ?? defaults.checkIntervalMs,
    maxChecks: requested.maxChecks ?? defaults.maxChecks,
    onChecksExhausted: requested.onChecksExhausted ?? defaults.onChecksExhausted,
  };
}

/** One check round of one message, claimed by one sweeper: the job that makes check `check`. */
export interface CheckJobRef {
  seq: bigint;
  messageId: string;
  check: number;
}
