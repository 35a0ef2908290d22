/**
 * Subscription topic patterns, AMQP topic-exchange style: words separated by dots, where `*`
 * matches exactly one word and `#` matches zero or more words. A pattern without wildcards
 * matches only the identical topic.
 */
export const TOPIC_PATTERN_GRAMMAR = '^([A-Za-z0-9_-]+|\\*|#)(\\.([A-Za-z0-9_-]+|\\*|#))*$';

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
