import { and, desc, eq, lt, sql, type SQL } from 'drizzle-orm';
import type { HeraldDb } from './connection';
import type { ListFilter } from './message.repository';
import { messages } from './schema/messages';

/** How a page of `MessageRepository.list` should be read so its payloads fit a byte budget. */
export interface FittedPage {
  /** The messages that fit (at least one, so a listing always moves on). */
  limit: number;
  /** Read from here, so messages stored after the sizing do not slip in unmeasured. */
  beforeSeq?: bigint;
}

/**
 * Sizes a page of messages (newest first) before reading it: only payload lengths cross the
 * wire, so a page of large payloads never has to be held in memory to find out it is too large.
 */
export async function fitMessagePage(db: HeraldDb, filter: ListFilter, maxBytes: number): Promise<FittedPage> {
  const where: SQL[] = [];
  if (filter.status) where.push(eq(messages.status, filter.status));
  if (filter.topic) where.push(eq(messages.topic, filter.topic));
  if (filter.beforeSeq !== undefined) where.push(lt(messages.seq, filter.beforeSeq));
  if (filter.createdBefore !== undefined) where.push(lt(messages.createdAt, filter.createdBefore));
  const rows = await db
    .select({ seq: messages.seq, bytes: sql<string>`LENGTH(${messages.payload})` })
    .from(messages)
    .where(where.length ? and(...where) : undefined)
    .orderBy(desc(messages.seq))
    .limit(filter.limit);
  const first = rows[0];
  if (!first) return { limit: filter.limit, beforeSeq: filter.beforeSeq };
  let limit = 0;
  let total = 0;
  for (const row of rows) {
    total += Number(row.bytes);
    if (limit > 0 && total > maxBytes) break;
    limit++;
  }
  return { limit, beforeSeq: first.seq + 1n };
}
