import type { CheckPolicy } from './check-policy';

export const CHECK_ANSWERS = ['commit', 'rollback', 'unknown'] as const;
export type CheckAnswer = (typeof CHECK_ANSWERS)[number];

/** A producer's answer may be a little JSON, never a document: a longer body is not read further. */
export const CHECK_ANSWER_MAX_BYTES = 16_384;

/**
 * Reads a producer's answer to a check-back call. Only HTTP 200 with a JSON object whose only
 * member is `status`, exactly `commit`, `rollback` or `unknown`, counts; everything else is
 * `unknown`, with the reason, and is never taken as commit. A body of more than
 * CHECK_ANSWER_MAX_BYTES (read one byte further to tell) is too large, whatever it starts with.
 */
export function parseCheckAnswer(statusCode: number | undefined, body: string | undefined): { answer: CheckAnswer; reason?: string } {
  if (statusCode === undefined) return { answer: 'unknown', reason: 'no answer' };
  if (statusCode !== 200) return { answer: 'unknown', reason: `producer answered HTTP ${statusCode}, not 200` };
  const text = body ?? '';
  if (text.length > CHECK_ANSWER_MAX_BYTES / 3 && new TextEncoder().encode(text).length > CHECK_ANSWER_MAX_BYTES) {
    return { answer: 'unknown', reason: `producer answered 200 with a body too large for an answer (over ${CHECK_ANSWER_MAX_BYTES} bytes)` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { answer: 'unknown', reason: 'producer answered 200 with a body that is not JSON' };
  }
  const isObject = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed);
  const status = isObject ? (parsed as { status?: unknown }).status : undefined;
  if (typeof status !== 'string' || !(CHECK_ANSWERS as readonly string[]).includes(status)) {
    return { answer: 'unknown', reason: `producer answered 200 without "status": "commit" | "rollback" | "unknown" (got ${JSON.stringify(status ?? null).slice(0, 100)})` };
  }
  // JSON.parse keeps the last of repeated members, so {"status":"rollback","status":"commit"}
  // would read as commit: the members are counted in the text itself.
  const members = topLevelMembers(text);
  const repeated = members.find((name, i) => members.indexOf(name) !== i);
  if (repeated !== undefined) return { answer: 'unknown', reason: `producer answered 200 with a duplicate member ${JSON.stringify(repeated).slice(0, 100)}` };
  const extra = members.find((name) => name !== 'status');
  if (extra !== undefined) return { answer: 'unknown', reason: `producer answered 200 with an extra member ${JSON.stringify(extra).slice(0, 100)} besides "status"` };
  return { answer: status as CheckAnswer };
}

/** The member names of the object `text` holds, repeats included; `text` must be valid JSON. */
function topLevelMembers(text: string): string[] {
  const names: string[] = [];
  let depth = 0;
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (depth === 1 && expectName) names.push(JSON.parse(text.slice(i, end + 1)) as string);
      expectName = false;
      i = end;
    } else if (c === '{' || c === '[') {
      depth++;
      expectName = depth === 1;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectName = true;
    }
  }
  return names;
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
