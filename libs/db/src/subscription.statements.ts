import { subscriptions } from './schema/subscriptions';
import { rowCodec } from './row.codec';

/**
 * Subscriptions as read on the hot path (every fan-out, every attempt's context), each column
 * aliased `s_…` so that it can share a row with a delivery's and a message's columns.
 */
export const SUBSCRIPTION_ROW = rowCodec(subscriptions, 'subscriptions', 's', 's_');

export const SELECT_ENABLED_SUBSCRIPTIONS = `SELECT ${SUBSCRIPTION_ROW.select} FROM subscriptions s WHERE s.enabled = TRUE`;
