import { messages } from './schema/messages';
import { rowCodec } from './row.codec';

/** The hot statements on `messages` as fixed text (see sql.runner.ts); columns come from the drizzle schema. */
export const MESSAGE_ROW = rowCodec(messages, 'messages', 'm');

/** `?` takes an array of `MESSAGE_ROW.values` rows. */
export const INSERT_MESSAGES = MESSAGE_ROW.insert;

/** `?`: the ids, an array (never empty). */
export const SELECT_MESSAGES_BY_ID = `SELECT ${MESSAGE_ROW.select} FROM messages m WHERE m.id IN (?)`;

/** `?`: the id. */
export const SELECT_MESSAGE = `SELECT ${MESSAGE_ROW.select} FROM messages m WHERE m.id = ? LIMIT 1`;

/** Confirm batch, the plain read: which of the ids (`?`, an array) are still prepared. */
export const SELECT_PREPARED_IDS = "SELECT id FROM messages WHERE id IN (?) AND status = 'prepared'";

/** Confirm batch, the locking read of the candidates (`?`, an array), in id order; held rows are skipped. */
export const LOCK_MESSAGES_SKIP_LOCKED = `SELECT ${MESSAGE_ROW.select} FROM messages m WHERE m.id IN (?) ORDER BY m.id FOR UPDATE SKIP LOCKED`;

/** Confirm batch: what `decidedColumns('confirmed', now)` sets (`updated_at`, `confirmed_at`, then the ids). */
export const CONFIRM_PREPARED =
  "UPDATE messages SET status = 'confirmed', next_check_at = NULL, updated_at = ?, confirmed_at = ? WHERE id IN (?) AND status = 'prepared'";
