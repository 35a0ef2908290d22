/**
 * Subscription topic patterns, AMQP topic-exchange style: words separated by dots, where `*`
 * matches exactly one word and `#` matches zero or more words. A pattern without wildcards
 * matches only the identical topic.
 */
export const TOPIC_PATTERN_GRAMMAR = '^([A-Za-z0-9_-]+|\\*|#)(\\.([A-Za-z0-9_-]+|\\*|#))*$';

/**
 * A topic's or pattern's first word (all of it when it has no dot), as SQL's
 * `SUBSTRING_INDEX(x, '.', 1)` gives it. A pattern whose first word is not `*` or `#` matches
 * only topics with the same first word, so a read of the subscriptions for some topics may
 * leave the others out (see SELECT_SUBSCRIPTIONS_FOR_TOPICS).
 */
export function firstWord(topicOrPattern: string): string {
  const dot = topicOrPattern.indexOf('.');
  return dot === -1 ? topicOrPattern : topicOrPattern.slice(0, dot);
}

export function topicMatches(pattern: string, topic: string): boolean {
  if (!pattern.includes('*') && !pattern.includes('#')) return pattern === topic;
  const p = pattern.split('.');
  const t = topic.split('.');
  // matches[j] = "pattern words from i on match topic words from j on", computed for i from the
  // end backwards: O(pattern × topic) whatever the pattern, so no input can make it backtrack.
  let next: boolean[] = Array.from({ length: t.length + 1 }, (_, j) => j === t.length);
  for (let i = p.length - 1; i >= 0; i--) {
    const word = p[i];
    const current: boolean[] = new Array<boolean>(t.length + 1).fill(false);
    for (let j = t.length; j >= 0; j--) {
      current[j] = word === '#'
        ? next[j] === true || (j < t.length && current[j + 1] === true)
        : j < t.length && (word === '*' || word === t[j]) && next[j + 1] === true;
    }
    next = current;
  }
  return next[0] === true;
}

/**
 * The one way of writing what `pattern` matches: in each run of wildcards, the `*`s first, then
 * one `#` if the run has any (`#.#` matches what `#` does; `#.*` what `*.#` does). Patterns are
 * counted against the per-pattern cap as written, so equivalent spellings must not be accepted.
 */
export function canonicalTopicPattern(pattern: string): string {
  const words = pattern.split('.');
  const out: string[] = [];
  for (let i = 0; i < words.length; ) {
    if (words[i] !== '*' && words[i] !== '#') {
      out.push(words[i] as string);
      i++;
      continue;
    }
    let stars = 0;
    let hash = false;
    for (; i < words.length && (words[i] === '*' || words[i] === '#'); i++) {
      if (words[i] === '*') stars++;
      else hash = true;
    }
    out.push(...Array<string>(stars).fill('*'), ...(hash ? ['#'] : []));
  }
  return out.join('.');
}
