import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalTopicPattern, firstWord, topicMatches } from './topic-pattern';

describe('canonicalTopicPattern', () => {
  it.each([
    ['capx.#.#', 'capx.#'],
    ['capx.#.*', 'capx.*.#'],
    ['#.*.#.x.*', '*.#.x.*'],
    ['*.*', '*.*'],
    ['order.paid', 'order.paid'],
    ['#', '#'],
  ])('writes %s as %s', (pattern, canonical) => expect(canonicalTopicPattern(pattern)).toBe(canonical));

  it('matches exactly the topics the pattern matches', () => {
    const topics = ['capx', 'capx.a', 'capx.a.b', 'capx.a.b.c', 'a', 'a.x', 'a.x.b', 'x.a', 'a.b.x.c', 'a.b.x', 'a.x.c.d'];
    for (const pattern of ['capx.#.#', 'capx.#.*', '#.*.#.x.*', '*.#.#.*', '#.#.x']) {
      const canonical = canonicalTopicPattern(pattern);
      for (const topic of topics) expect(topicMatches(canonical, topic), `${pattern} / ${topic}`).toBe(topicMatches(pattern, topic));
    }
  });
});

describe('firstWord', () => {
  it('is what SUBSTRING_INDEX(x, ".", 1) gives', () => {
    expect(firstWord('order.paid.eu')).toBe('order');
    expect(firstWord('order')).toBe('order');
    expect(firstWord('#.paid')).toBe('#');
    expect(firstWord('')).toBe('');
  });

  // The subscriptions read for a batch keeps only patterns starting with *, # or a topic's first
  // word: a pattern matching a topic outside that set would lose its deliveries.
  it('of a pattern that matches a topic is *, # or the topic\'s first word (the read of candidate subscriptions is a superset)', () => {
    const word = fc.constantFrom('a', 'b', 'ab', 'x-1', '_');
    const topic = fc.array(word, { minLength: 1, maxLength: 5 }).map((w) => w.join('.'));
    const pattern = fc.array(fc.oneof(word, fc.constant('*'), fc.constant('#')), { minLength: 1, maxLength: 5 }).map((w) => w.join('.'));
    let matched = 0;
    fc.assert(
      fc.property(pattern, topic, (p, t) => {
        if (!topicMatches(p, t)) return true;
        matched++;
        return ['*', '#', firstWord(t)].includes(firstWord(p));
      }),
      { numRuns: 20_000 },
    );
    // The property must have been tested on matches, not only vacuously.
    expect(matched).toBeGreaterThan(1_000);
  });
});
