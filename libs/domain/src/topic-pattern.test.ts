import { describe, expect, it } from 'vitest';
import { canonicalTopicPattern, topicMatches } from './topic-pattern';

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
