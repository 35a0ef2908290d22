import { describe, expect, it } from 'vitest';
import { attemptVerdict, deliveryLeaseMs } from './delivery';
import { backoffDelayMs, nextAttemptDelayMs, parseRetryAfter } from './retry-policy';
import { TOPIC_PATTERN_GRAMMAR, topicMatches } from './topic-pattern';

describe('topicMatches', () => {
  it.each([
    ['order.paid', 'order.paid', true],
    ['order.paid', 'order.paid.eu', false],
    ['order.*', 'order.paid', true],
    ['order.*', 'order', false],
    ['order.*', 'order.paid.eu', false],
    ['*.paid', 'order.paid', true],
    ['order.#', 'order', true],
    ['order.#', 'order.paid.eu', true],
    ['#', 'anything.at.all', true],
    ['#.eu', 'order.paid.eu', true],
    ['#.eu', 'eu', true],
    ['order.#.eu', 'order.eu', true],
    ['order.#.eu', 'order.paid.fast.eu', true],
    ['order.#.eu', 'order.paid.us', false],
    ['order.#.#.eu', 'order.eu', true],
    ['*.*', 'a.b', true],
    ['*.*', 'a', false],
    ['#.*', 'a', true],
    ['Order.paid', 'order.paid', false],
  ])('%s against %s is %s', (pattern, topic, expected) => {
    expect(topicMatches(pattern, topic)).toBe(expected);
  });

  it('stays fast on adversarial patterns', () => {
    const pattern = Array.from({ length: 60 }, () => '#').join('.') + '.x';
    const topic = Array.from({ length: 90 }, () => 'a').join('.');
    const started = performance.now();
    expect(topicMatches(pattern, topic)).toBe(false);
    const alternating = Array.from({ length: 50 }, () => '#.a').join('.') + '.b';
    expect(topicMatches(alternating, topic)).toBe(false);
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('has a grammar that takes words and wildcards and refuses empty or glued ones', () => {
    const grammar = new RegExp(TOPIC_PATTERN_GRAMMAR);
    for (const ok of ['a', 'a.b', '*', '#', 'a.*.#', 'x-y_z.*']) expect(grammar.test(ok), ok).toBe(true);
    for (const bad of ['', 'a..b', '.a', 'a.', 'a*', 'a.b#', '**', 'a b']) expect(grammar.test(bad), bad).toBe(false);
  });
});

describe('backoff', () => {
  const policy = { initialMs: 1000, maxMs: 60_000 };
  it('grows exponentially with equal jitter and is capped', () => {
    expect(backoffDelayMs(policy, 1, () => 0)).toBe(500);
    expect(backoffDelayMs(policy, 1, () => 1)).toBe(1000);
    expect(backoffDelayMs(policy, 3, () => 1)).toBe(4000);
    expect(backoffDelayMs(policy, 30, () => 1)).toBe(60_000);
    expect(backoffDelayMs(policy, 1000, () => 0.5)).toBe(45_000);
  });
  it('waits at least as long as Retry-After asks', () => {
    expect(nextAttemptDelayMs(policy, 1, 30_000, () => 1)).toBe(30_000);
    expect(nextAttemptDelayMs(policy, 1, undefined, () => 1)).toBe(1000);
  });
});

describe('parseRetryAfter', () => {
  const now = new Date('2026-11-23T10:00:00Z');
  it('reads delay-seconds and HTTP dates', () => {
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Mon, 23 Nov 2026 10:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Mon, 23 Nov 2026 09:00:00 GMT', now)).toBe(0);
  });
  it('caps absurd values and ignores garbage', () => {
    expect(parseRetryAfter('99999999', now)).toBe(24 * 3600_000);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
    expect(parseRetryAfter('1.5', now)).toBeUndefined();
  });
});

describe('attemptVerdict', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const sub = { maxAttempts: 3, backoff: { initialMs: 1_000, maxMs: 8_000 } };
  const half = () => 0.5;

  it('delivers on success, whatever the attempt', () => {
    expect(attemptVerdict({ ok: true, durationMs: 1 }, 3, sub, now)).toEqual({ kind: 'delivered' });
  });

  it('retries a failure before the last attempt after the backoff, or a longer Retry-After', () => {
    expect(attemptVerdict({ ok: false, durationMs: 1, error: 'HTTP 500' }, 2, sub, now, half)).toEqual({ kind: 'retry', runAt: new Date(now.getTime() + 1_500) });
    expect(attemptVerdict({ ok: false, durationMs: 1, retryAfterMs: 60_000 }, 1, sub, now, half)).toEqual({ kind: 'retry', runAt: new Date(now.getTime() + 60_000) });
  });

  it('gives up at the last attempt, and at once on a permanent failure or 410 Gone', () => {
    expect(attemptVerdict({ ok: false, durationMs: 1, error: 'HTTP 500' }, 3, sub, now)).toEqual({ kind: 'dead', reason: 'gave up after 3 attempts: HTTP 500' });
    expect(attemptVerdict({ ok: false, durationMs: 1, error: 'HTTP 410', gone: true }, 1, sub, now)).toEqual({ kind: 'dead', reason: 'HTTP 410' });
    expect(attemptVerdict({ ok: false, durationMs: 1, permanent: true }, 1, sub, now)).toEqual({ kind: 'dead', reason: 'permanent failure' });
  });

  it('treats an attempt whose subscription vanished as the last', () => {
    expect(attemptVerdict({ ok: false, durationMs: 1 }, 1, undefined, now).kind).toBe('dead');
  });
});

describe('deliveryLeaseMs', () => {
  const timeouts = { webhookTimeoutMs: 10_000, amqpConfirmTimeoutMs: 7_000 };
  it("outlives the send: the webhook's own timeout, else the default, plus a margin", () => {
    expect(deliveryLeaseMs({ type: 'webhook', url: 'https://x.example', timeoutMs: 2_000 }, timeouts)).toBe(7_000);
    expect(deliveryLeaseMs({ type: 'webhook', url: 'https://x.example' }, timeouts)).toBe(15_000);
    expect(deliveryLeaseMs({ type: 'rabbitmq', exchange: 'x' }, timeouts)).toBe(12_000);
  });
});
