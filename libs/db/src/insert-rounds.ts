import { sql } from 'drizzle-orm';
import type { HeraldDb } from './connection';
import { refKey, type NewMessageRow } from './rows';
import type { MessageRow } from './schema/messages';
import { isDuplicateKey } from './transactions';

/** Prepare and direct-publish batches: rounds of multi-row INSERTs tried before the rest goes its own way. */
const INSERT_ROUNDS = 3;

/** What rounds of multi-row INSERTs did with a batch's rows (see {@link insertInRounds}). */
export interface InsertRounds {
  /** Rows stored by an INSERT that succeeded. */
  stored: NewMessageRow[];
  /** Rows whose id was already stored, with the row that holds it. */
  taken: Map<NewMessageRow, MessageRow>;
  /** Rows neither stored nor taken: an INSERT failed otherwise (`error`), or the rounds ran out. */
  rest: NewMessageRow[];
  /** INSERTs tried, failed ones included. */
  statements: number;
  /** Some INSERT met an id already stored. */
  duplicate: boolean;
  /** What stopped the rounds early: an error other than a duplicate id, or a duplicate no read explains. */
  error?: unknown;
}

/**
 * Inserts rows (distinct (tenant, id)s) in rounds of one multi-row INSERT each. A failed INSERT stored
 * nothing, so after a duplicate id one read (`find`) picks out the ids already stored and the
 * rest are tried again. Any other error ends the rounds; the caller decides about the rest.
 */
export async function insertInRounds(
  rows: NewMessageRow[],
  insert: (rows: NewMessageRow[]) => Promise<unknown>,
  find: (rows: NewMessageRow[]) => Promise<Map<string, MessageRow>>,
): Promise<InsertRounds> {
  const rounds: InsertRounds = { stored: [], taken: new Map(), rest: rows, statements: 0, duplicate: false };
  for (let round = 0; rounds.rest.length > 0 && round < INSERT_ROUNDS; round++) {
    const pending = rounds.rest;
    try {
      rounds.statements++;
      await insert(pending);
      rounds.stored.push(...pending);
      rounds.rest = [];
    } catch (e) {
      if (!isDuplicateKey(e)) return { ...rounds, error: e };
      rounds.duplicate = true;
      const existing = await find(pending);
      // The duplicate was not among the ids (cannot happen with one unique key): left to the caller.
      if (existing.size === 0) return { ...rounds, error: e };
      for (const row of pending) {
        const stored = existing.get(refKey(row));
        if (stored) rounds.taken.set(row, stored);
      }
      rounds.rest = pending.filter((r) => !existing.has(refKey(r)));
    }
  }
  return rounds;
}

/** Each (tenant, id)'s first row in a batch, by `refKey`; later copies answer after it, as its retries would. */
export function firstCopies(rows: NewMessageRow[]): Map<string, NewMessageRow> {
  const first = new Map<string, NewMessageRow>();
  for (const row of rows) if (!first.has(refKey(row))) first.set(refKey(row), row);
  return first;
}

/** A prepare batch's weight limit until `@@max_allowed_packet` is known. */
const DEFAULT_INSERT_WEIGHT = 4 * 2 ** 20;

/** A row's share of a multi-row INSERT, in bytes: its text as UTF-8, doubled for escaping, plus the rest. */
export function insertWeight(row: NewMessageRow): number {
  const text = [row.id, row.topic, row.key, row.payload, row.headers, row.checkUrl, row.traceParent];
  return 2 * text.reduce((sum, t) => sum + (t ? Buffer.byteLength(t) : 0), 0) + 512;
}

/** ¾ of `@@max_allowed_packet`, kept between 64 KiB (batching survives a tiny setting) and 16 MiB (no gain beyond). */
export function insertWeightLimit(packet: number): number {
  return Math.min(16 * 2 ** 20, Math.max(64 * 2 ** 10, Math.floor(packet * 0.75)));
}

/** The weight a batch of inserts may reach, read from `@@max_allowed_packet` once (again after a failure). */
export class InsertWeightLimit {
  private limit = DEFAULT_INSERT_WEIGHT;
  private read?: Promise<void>;

  constructor(private readonly db: HeraldDb) {}

  get current(): number {
    return this.limit;
  }

  load(): Promise<void> {
    this.read ??= this.db
      .execute(sql`SELECT @@max_allowed_packet AS packet`)
      .then(([rows]) => {
        const packet = Number((rows as unknown as Array<{ packet: unknown }>)[0]?.packet);
        if (Number.isFinite(packet) && packet > 0) this.limit = insertWeightLimit(packet);
      })
      .catch(() => {
        this.read = undefined;
      });
    return this.read;
  }
}
