import type { CheckPolicy } from './check-policy';

export const CHECK_ANSWERS = ['commit', 'rollback', 'unknown'] as const;
export type CheckAnswer = (typeof CHECK_ANSWERS)[number];

/**
 * Reads a producer's answer to a check-back call. Only HTTP 200 with a JSON object whose
 * `status` is exactly `commit`, `rollback` or `unknown` counts; everything else is `unknown`,
 * with the reason, and is never taken as commit.
 */
export function parseCheckAnswer(statusCode: number | undefined, body: string | undefined): { answer: CheckAnswer; reason?: string } {
  if (statusCode === undefined) return { answer: 'unknown', reason: 'no answer' };
  if (statusCode !== 200) return { answer: 'unknown', reason: `producer answered HTTP ${statusCode}, not 200` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body ?? '');
  } catch {
    return { answer: 'unknown', reason: 'producer answered 200 with a body that is not JSON' };
  }
  const status = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as { status?: unknown }).status : undefined;
  if (typeof status === 'string' && (CHECK_ANSWERS as readonly string[]).includes(status)) return { answer: status as CheckAnswer };
  return { answer: 'unknown', reason: `producer answered 200 without "status": "commit" | "rollback" | "unknown" (got ${JSON.stringify(status ?? null).slice(0, 100)})` };
}

/** The longest wait between two checks of one message, whatever its interval. */
export const DEFAULT_CHECK_INTERVAL_CAP_MS = 600_000;

/**
 * Wait after the `checksDone`-th unknown answer before the next check: the message's interval,
 * doubled per check, capped.
 */
export function nextCheckDelayMs(policy: Pick<CheckPolicy, 'checkIntervalMs'>, checksDone: number, capMs = DEFAULT_CHECK_INTERVAL_CAP_MS): number {
  return Math.min(capMs, policy.checkIntervalMs * 2 ** Math.min(Math.max(0, checksDone - 1), 30));
}

/** What an unknown answer leads to: another check, or the policy once `maxChecks` are spent. */
export function afterUnknown(policy: CheckPolicy, checksDone: number): 'ask-again' | 'cancel' | 'hold' {
  if (checksDone < policy.maxChecks) return 'ask-again';
  return policy.onChecksExhausted === 'hold' ? 'hold' : 'cancel';
}
