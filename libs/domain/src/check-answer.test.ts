import { describe, expect, it } from 'vitest';
import { afterUnknown, CHECK_ANSWER_MAX_BYTES, nextCheckDelayMs, parseCheckAnswer } from './check-answer';
import { DEFAULT_CHECK_POLICY } from './check-policy';

describe('parseCheckAnswer', () => {
  it('takes exactly commit, rollback or unknown from a 200 JSON body', () => {
    expect(parseCheckAnswer(200, '{"status":"commit"}')).toEqual({ answer: 'commit' });
    expect(parseCheckAnswer(200, ' { "status" : "rollback" }\n')).toEqual({ answer: 'rollback' });
    expect(parseCheckAnswer(200, '{"status":"unknown"}')).toEqual({ answer: 'unknown' });
    expect(parseCheckAnswer(200, '{"st\\u0061tus":"commit"}')).toEqual({ answer: 'commit' });
  });

  // JSON.parse keeps the last repeat and ignores extras: read loosely, these committed.
  it.each([
    ['{"status":"rollback","status":"commit"}', /duplicate member "status"/],
    ['{"status":"commit","status":"commit"}', /duplicate member "status"/],
    ['{"status":"commit","x":1}', /extra member "x"/],
    ['{"x":{"status":"rollback","y":[1,"]"]},"status":"commit"}', /extra member "x"/],
    ['{"status":"commit","__proto__":{}}', /extra member "__proto__"/],
    ['{"status":"rollback","note":"refunded"}', /extra member "note"/],
  ])('counts %s as unknown, saying why', (body, reason) => {
    const result = parseCheckAnswer(200, body);
    expect(result.answer).toBe('unknown');
    expect(result.reason).toMatch(reason);
  });

  it('calls an answer longer than the limit too large, not "not JSON"', () => {
    const big = `{"status":"commit","pad":"${'x'.repeat(65_000)}"}`;
    expect(parseCheckAnswer(200, big.slice(0, CHECK_ANSWER_MAX_BYTES + 1))).toEqual({ answer: 'unknown', reason: expect.stringMatching(/too large/) });
    const padded = `{"status":"commit"}${' '.repeat(CHECK_ANSWER_MAX_BYTES - 19)}`;
    expect(parseCheckAnswer(200, padded)).toEqual({ answer: 'commit' });
  });
  it.each([
    [500, '{"status":"commit"}', /HTTP 500/],
    [201, '{"status":"commit"}', /HTTP 201/],
    [204, '', /HTTP 204/],
    [200, 'commit', /not JSON/],
    [200, '', /not JSON/],
    [200, '{"status":"COMMIT"}', /got "COMMIT"/],
    [200, '{"status":"committed"}', /got "committed"/],
    [200, '{"status":true}', /got true/],
    [200, '["commit"]', /got null/],
    [200, '{"state":"commit"}', /got null/],
    [200, 'null', /got null/],
    [undefined, undefined, /no answer/],
  ])('never takes HTTP %s with %j as commit', (code, body, reason) => {
    const result = parseCheckAnswer(code, body);
    expect(result.answer).toBe('unknown');
    expect(result.reason).toMatch(reason);
  });
});

describe('the default schedule', () => {
  it('waits 10 s, 20 s, 40 s … capped at 10 min, and reaches the 15th check about 91 minutes after prepare', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => nextCheckDelayMs(DEFAULT_CHECK_POLICY, n))).toEqual([10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 600_000, 600_000]);
    let at = DEFAULT_CHECK_POLICY.checkAfterMs;
    for (let done = 1; done < DEFAULT_CHECK_POLICY.maxChecks; done++) at += nextCheckDelayMs(DEFAULT_CHECK_POLICY, done);
    expect(Math.round(at / 60_000)).toBe(91);
  });
  it('applies the policy only when maxChecks are spent', () => {
    expect(afterUnknown(DEFAULT_CHECK_POLICY, 14)).toBe('ask-again');
    expect(afterUnknown(DEFAULT_CHECK_POLICY, 15)).toBe('cancel');
    expect(afterUnknown({ ...DEFAULT_CHECK_POLICY, onChecksExhausted: 'hold' }, 15)).toBe('hold');
  });
});
