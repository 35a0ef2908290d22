import { messages } from './schema/messages';
import { rowCodec } from './row.codec';

/** The hot statements on `messages` as fixed text (see sql.runner.ts); columns come from the drizzle schema. */
export const MESSAGE_ROW = rowCodec(messages, 'messages', 'm');

/** `?` takes an array of `MESSAGE_ROW.values` rows. */
export const INSERT_MESSAGES = MESSAGE_ROW.insert;

/** `?`: the ids, an array (never empty). Every tenant's rows: the caller keeps those it asked for. */
export const SELECT_MESSAGES_BY_ID = `SELECT ${MESSAGE_ROW.select} FROM messages m WHERE m.id IN (?)`;

/** A direct-publish batch's read-back of the seqs MySQL gave its rows (`?`, the ids), in any tenant. */
export const SELECT_SEQS_BY_ID = 'SELECT seq, tenant, id FROM messages WHERE id IN (?)';

/** Which tenants hold an id (`?`), for an admin naming no tenant. */
export const SELECT_TENANTS_OF_ID = 'SELECT tenant FROM messages WHERE id = ? ORDER BY tenant';

/** `?`: the tenant, then the id. */
export const SELECT_MESSAGE = `SELECT ${MESSAGE_ROW.select} FROM messages m WHERE m.tenant = ? AND m.id = ? LIMIT 1`;

/** `?`: the seq. */
export const SELECT_MESSAGE_BY_SEQ = `SELECT ${MESSAGE_ROW.select} FROM messages m WHERE m.seq = ?`;

/**
 * Confirm batch, the locking read of its messages by the unique (id, tenant) key (`?`, an array of
 * [id, tenant] pairs); held rows are skipped, so it never waits and the lock order does not matter.
 */
export const LOCK_MESSAGES_BY_REF_SKIP_LOCKED = `SELECT ${MESSAGE_ROW.select} FROM messages m WHERE (m.id, m.tenant) IN (?) FOR UPDATE SKIP LOCKED`;

/** Confirm batch: what `decidedColumns('confirmed', now)` sets (`updated_at`, `confirmed_at`, then the seqs). */
export const CONFIRM_PREPARED =
  "UPDATE messages SET status = 'confirmed', next_check_at = NULL, updated_at = ?, confirmed_at = ? WHERE seq IN (?) AND status = 'prepared'";
