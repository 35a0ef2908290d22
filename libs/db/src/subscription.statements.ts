import { subscriptions } from './schema/subscriptions';
import { rowCodec } from './row.codec';

/**
 * Subscriptions as read on the hot path (every fan-out, every attempt's context), each column
 * aliased `s_…` so that it can share a row with a delivery's and a message's columns.
 */
export const SUBSCRIPTION_ROW = rowCodec(subscriptions, 'subscriptions', 's', 's_');

export const SELECT_ENABLED_SUBSCRIPTIONS = `SELECT ${SUBSCRIPTION_ROW.select} FROM subscriptions s WHERE s.enabled = TRUE`;

/** A column's first word, as `firstWord` gives it in code. */
const firstWordOf = (column: string) => `SUBSTRING_INDEX(${column}, '.', 1)`;
const PATTERN_FIRST_WORD = firstWordOf('s.topic_pattern');
/** The enabled subscriptions whose pattern starts with a wildcard or with one of `firstWords` (SQL). */
const enabledStartingWith = (firstWords: string) => `${SELECT_ENABLED_SUBSCRIPTIONS} AND ${PATTERN_FIRST_WORD} IN ('*', '#', ${firstWords})`;

/**
 * The enabled subscriptions that may match a topic whose first word is in `?` (an array, not
 * empty): a pattern starting with a literal word matches only topics starting with that word,
 * so the others are neither sent nor decoded (with many teams' subscriptions, reading them all
 * cost every batch about 2.5 µs each, docs/performance.md). A superset: `topicMatches` decides.
 */
export const SELECT_SUBSCRIPTIONS_FOR_TOPICS = enabledStartingWith('?');

/** A confirm batch of more messages than this reads every enabled subscription: one read shared by many messages costs each little. */
export const MAX_MESSAGES_FOR_TOPIC_FILTER = 16;

/**
 * The same for `n` messages named by (id, tenant), for a confirm batch, which learns their topics
 * in the same trip (values: id, tenant, id, tenant, …). Each message's topic is read by a
 * subquery of its own that does not depend on the subscription row, so it runs once; a topic
 * never changes once stored, so the plain read is enough, and a message not found adds nothing.
 */
export function selectSubscriptionsForMessages(n: number): string {
  return FOR_MESSAGES[n] ?? buildSelectForMessages(n);
}

function buildSelectForMessages(n: number): string {
  const topicFirstWord = `(SELECT ${firstWordOf('m.topic')} FROM messages m WHERE m.id = ? AND m.tenant = ?)`;
  return enabledStartingWith(Array.from({ length: n }, () => topicFirstWord).join(', '));
}

// Built once: every confirm batch of up to MAX_MESSAGES_FOR_TOPIC_FILTER sends one of these.
const FOR_MESSAGES = Array.from({ length: MAX_MESSAGES_FOR_TOPIC_FILTER + 1 }, (_, n) => buildSelectForMessages(n));
