import type { StoredMessage } from '@herald/domain';
import type { HeraldDb } from './connection';
import { foldedFanOut, leasingTransaction, noFanOut, type FanOut } from './fan-out';
import { firstCopies, insertInRounds, insertWeight, InsertWeightLimit, type InsertRounds } from './insert-rounds';
import type { LeaseSlots } from './lease-slots';
import { CONFIRM_PREPARED, INSERT_MESSAGES, LOCK_MESSAGES_BY_REF_SKIP_LOCKED, MESSAGE_ROW, SELECT_MESSAGES_BY_ID, SELECT_SEQS_BY_ID } from './message.statements';
import { enabledSubscriptions, firstWords } from './subscription.repository';
import { MAX_MESSAGES_FOR_TOPIC_FILTER, SELECT_ENABLED_SUBSCRIPTIONS, SELECT_SUBSCRIPTIONS_FOR_TOPICS, selectSubscriptionsForMessages } from './subscription.statements';
import { decidedColumns, refKey, toMessage, type MessageRef, type NewMessageRow } from './rows';
import type { MessageRow } from './schema/messages';
import { FAIL_UNLESS_ROW_COUNT, runSql, selectSql } from './sql.runner';
import type { Statement } from './folded-transaction';
import { BATCH_RETRY, endsTransaction, isDuplicateKey, withDeadlockRetry } from './transactions';
import { quietly, STALLED_BATCH_MS, WriteBatcher, type OnWriteBatch, type WriteBatchFallback } from './write.batcher';

/** How a prepare batch answered one row. */
export type InsertAnswer =
  | { kind: 'stored' }
  /** The id was taken (by an earlier message, or an earlier copy in the same batch). */
  | { kind: 'exists'; row: MessageRow }
  | { kind: 'failed'; error: unknown };

/** How a direct-publish batch answered one message; undefined: its caller publishes it alone. */
export type PublishAnswer = { kind: 'stored'; fanOut: FanOut } | { kind: 'exists'; row: MessageRow } | undefined;

/** A confirm applied by a batch: the message and its deliveries as committed. */
export interface AppliedConfirm extends FanOut {
  message: StoredMessage;
}

export interface MessageBatchOptions {
  /** Batches of a kind at once once one has stalled (default 4). */
  maxBatchesInFlight?: number;
  /** How long a batch runs before the next of its kind may start beside it. */
  stalledBatchMs?: number;
  /** Writes of each kind that may wait for a batch before new ones are refused. */
  maxQueuedWrites?: number;
  onBatch?: OnWriteBatch;
  /** Present in processes that send: deliveries due now are created leased to them. */
  slots?: LeaseSlots;
  now?: () => Date;
}

/**
 * Group commit of prepares, direct publishes and confirms: writes that arrive while a batch of
 * their kind is being written wait and are written together, each answered only after the
 * statement or transaction holding it committed (docs/design.md, "Group commit").
 */
export class MessageBatches {
  private readonly inserts: WriteBatcher<NewMessageRow, InsertAnswer>;
  private readonly publishes: WriteBatcher<NewMessageRow, PublishAnswer>;
  private readonly confirms: WriteBatcher<MessageRef, AppliedConfirm | undefined>;
  private readonly weightLimit: InsertWeightLimit;
  private readonly onBatch: OnWriteBatch;
  private readonly now: () => Date;

  constructor(
    private readonly db: HeraldDb,
    private readonly options: MessageBatchOptions = {},
  ) {
    this.onBatch = quietly(options.onBatch);
    this.now = options.now ?? (() => new Date());
    this.weightLimit = new InsertWeightLimit(db);
    const batches = { maxInFlight: options.maxBatchesInFlight ?? 4, maxBatch: 200, maxQueued: options.maxQueuedWrites, stalledAfterMs: options.stalledBatchMs ?? STALLED_BATCH_MS };
    const byWeight = { maxWeight: () => this.weightLimit.current, weight: insertWeight };
    this.inserts = new WriteBatcher((rows) => this.insertMany(rows), { ...batches, ...byWeight });
    this.publishes = new WriteBatcher((rows) => this.publishMany(rows), { ...batches, ...byWeight });
    this.confirms = new WriteBatcher((refs) => this.confirmMany(refs), batches);
  }

  insert(row: NewMessageRow): Promise<InsertAnswer> {
    return this.inserts.submit(row);
  }

  publish(row: NewMessageRow): Promise<PublishAnswer> {
    return this.publishes.submit(row);
  }

  /** Undefined: the batch did not confirm it (not prepared, held elsewhere, or the batch failed). */
  confirm(ref: MessageRef): Promise<AppliedConfirm | undefined> {
    return this.confirms.submit(ref);
  }

  /**
   * One multi-row INSERT for the batch. On a duplicate id the ids already stored answer from one
   * read and the rest are tried again; on any other error the rows are inserted one statement
   * each in one transaction, so a bad row fails alone. A row answers `stored` only once committed.
   */
  private async insertMany(rows: NewMessageRow[]): Promise<InsertAnswer[]> {
    await this.weightLimit.load();
    const first = firstCopies(rows);
    // A deadlocked INSERT (a victim of gap locks near its ids) was rolled back whole: run it again.
    const insert = (pending: NewMessageRow[]) => withDeadlockRetry(() => runSql(this.db, INSERT_MESSAGES, [pending.map(MESSAGE_ROW.values)]), BATCH_RETRY.attempts, BATCH_RETRY.options);
    const rounds = await insertInRounds([...first.values()], insert, (found) => this.findRows(found));
    const answers = new Map<NewMessageRow, InsertAnswer>();
    for (const row of rounds.stored) answers.set(row, { kind: 'stored' });
    for (const [row, stored] of rounds.taken) answers.set(row, { kind: 'exists', row: stored });
    const fallbacks = new Set<WriteBatchFallback>();
    if (rounds.duplicate) fallbacks.add('duplicate');
    let { rest, error } = rounds;
    if (error !== undefined && rows.length === 1 && !isDuplicateKey(error)) {
      // A batch of one has nothing to spare its neighbours from: its own error is its answer.
      answers.set(rest[0] as NewMessageRow, { kind: 'failed', error });
      rest = [];
      error = undefined;
    } else if (error !== undefined) {
      fallbacks.add('error');
    }
    // Thrown here (connection lost, deadlock twice): the whole batch fails, and no row was answered 2xx.
    if (rest.length > 0) for (const [row, answer] of await this.insertOneByOne(rest)) answers.set(row, answer);
    if (rows.length > first.size) fallbacks.add('duplicate');
    this.onBatch({ kind: 'prepare', size: rows.length, statements: rounds.statements, fallbacks: [...fallbacks], ...(error !== undefined && { error }) });
    return rows.map((row): InsertAnswer => {
      const own = answers.get(row);
      if (own) return own;
      // A later copy of an id in the batch: it answers as a retry of the first would.
      const original = first.get(refKey(row)) as NewMessageRow;
      const theirs = answers.get(original) ?? { kind: 'failed', error: new Error(`message ${row.id} got no answer in its batch`) };
      return theirs.kind === 'stored' ? { kind: 'exists', row: { ...original, seq: 0n } } : theirs;
    });
  }

  /** One statement per row in one transaction: InnoDB rolls back only the failing statement. */
  private async insertOneByOne(rows: NewMessageRow[]): Promise<Map<NewMessageRow, InsertAnswer>> {
    const answers = await withDeadlockRetry(() => this.db.transaction(async (tx) => {
      const own = new Map<NewMessageRow, InsertAnswer | 'duplicate'>();
      for (const row of rows) {
        try {
          await runSql(tx, INSERT_MESSAGES, [[MESSAGE_ROW.values(row)]]);
          own.set(row, { kind: 'stored' });
        } catch (error) {
          if (endsTransaction(error)) throw error;
          own.set(row, isDuplicateKey(error) ? 'duplicate' : { kind: 'failed', error });
        }
      }
      return own;
    }), BATCH_RETRY.attempts, BATCH_RETRY.options);
    const taken = [...answers].filter(([, a]) => a === 'duplicate').map(([row]) => row);
    const existing = taken.length > 0 ? await this.findRows(taken) : new Map<string, MessageRow>();
    const result = new Map<NewMessageRow, InsertAnswer>();
    for (const [row, answer] of answers) {
      if (answer !== 'duplicate') result.set(row, answer);
      else {
        const stored = existing.get(refKey(row));
        result.set(row, stored ? { kind: 'exists', row: stored } : { kind: 'failed', error: new Error(`message ${row.id} was a duplicate but cannot be read`) });
      }
    }
    return result;
  }

  /** The stored rows of these (tenant, id)s, by `refKey`; other tenants' rows of the same ids are left out. */
  private async findRows(refs: MessageRef[]): Promise<Map<string, MessageRow>> {
    if (refs.length === 0) return new Map();
    const wanted = new Set(refs.map(refKey));
    const rows = await selectSql<object>(this.db, SELECT_MESSAGES_BY_ID, [[...new Set(refs.map((r) => r.id))]]);
    return new Map(rows.map((r) => MESSAGE_ROW.decode(r)).filter((row) => wanted.has(refKey(row))).map((row) => [refKey(row), row]));
  }

  /**
   * One transaction per round inserts the batch's messages (already `confirmed`, in id order, the
   * lock order) and all their deliveries. Duplicates take the prepare batch's rounds; any other
   * failure leaves the messages not yet answered to be published one by one by their callers.
   */
  private async publishMany(rows: NewMessageRow[]): Promise<PublishAnswer[]> {
    await this.weightLimit.load();
    const now = this.now();
    const first = firstCopies(rows);
    const fallbacks = new Set<WriteBatchFallback>();
    let fanOuts = new Map<bigint, FanOut>();
    const seqs = new Map<string, bigint>();
    let rounds: InsertRounds;
    try {
      rounds = await insertInRounds(
        [...first.values()].sort((a, b) => (a.id < b.id ? -1 : 1)),
        async (pending) => {
          fanOuts = await withDeadlockRetry(() => leasingTransaction(this.db, this.options.slots, async (tx, hold) => {
            // Deliveries reference their message by seq: the new rows' seqs are read back in the same trip.
            const [, inserted, enabled] = await tx.send([[INSERT_MESSAGES, [pending.map(MESSAGE_ROW.values)]], [SELECT_SEQS_BY_ID, [pending.map((row) => row.id)]], [SELECT_SUBSCRIPTIONS_FOR_TOPICS, [firstWords(pending.map((row) => row.topic))]]]);
            for (const r of inserted as Array<{ seq: string; tenant: string; id: string }>) seqs.set(refKey(r), BigInt(r.seq));
            const batch = pending.map((row) => ({ ...row, seq: seqs.get(refKey(row)) as bigint, stored: toMessage(row) }));
            return (await foldedFanOut(tx, enabledSubscriptions(enabled), batch, now, hold, [], { commit: true })).fanOuts;
          }, leasedIn), BATCH_RETRY.attempts, BATCH_RETRY.options);
        },
        (found) => this.findRows(found),
      );
    } catch (error) {
      // The read of the ids already stored failed: nothing of this round committed.
      this.onBatch({ kind: 'direct', size: rows.length, statements: 0, fallbacks: ['failed'], error });
      return rows.map(() => undefined);
    }
    const answers = new Map<NewMessageRow, PublishAnswer>();
    for (const row of rounds.stored) answers.set(row, { kind: 'stored', fanOut: fanOuts.get(seqs.get(refKey(row)) ?? -1n) ?? noFanOut() });
    for (const [row, stored] of rounds.taken) answers.set(row, { kind: 'exists', row: stored });
    if (rounds.duplicate || rows.length > first.size) fallbacks.add('duplicate');
    if (rounds.error !== undefined) fallbacks.add(endsTransaction(rounds.error) ? 'failed' : 'error');
    this.onBatch({ kind: 'direct', size: rows.length, statements: rounds.statements, fallbacks: [...fallbacks], ...(rounds.error !== undefined && { error: rounds.error }) });
    return rows.map((row): PublishAnswer => {
      const original = first.get(refKey(row)) as NewMessageRow;
      const theirs = answers.get(original);
      // A later copy of an id in the batch answers as a retry of the first would.
      return row !== original && theirs?.kind === 'stored' ? { kind: 'exists', row: { ...original, seq: seqs.get(refKey(original)) ?? 0n } } : theirs;
    });
  }

  /**
   * One folded transaction (READ COMMITTED: no gap locks) locks the batch's messages by (id,
   * tenant) with SKIP LOCKED, so a held row waits alone, then confirms those still `prepared` and
   * creates all their deliveries. An id it did not confirm answers undefined and its caller
   * decides it on its own.
   */
  private async confirmMany(refs: MessageRef[]): Promise<Array<AppliedConfirm | undefined>> {
    const now = this.now();
    const wanted = new Map(refs.map((r) => [refKey(r), [r.id, r.tenant]]));
    const fallbacks = new Set<WriteBatchFallback>();
    if (wanted.size < refs.length) fallbacks.add('duplicate');
    let statements = 0;
    let confirmed: Map<string, AppliedConfirm>;
    try {
      confirmed = await withDeadlockRetry(() => leasingTransaction(this.db, this.options.slots, async (tx, hold) => {
        statements = 0;
        fallbacks.delete('skipped-locked');
        const applied = new Map<string, AppliedConfirm>();
        // Locked by (id, tenant), the unique key: another tenant's message of the same id is never
        // touched. SKIP LOCKED: a row held elsewhere (or missing) is left for its caller to decide alone.
        const refValues = [...wanted.values()];
        const subscriptionsRead: Statement = refValues.length <= MAX_MESSAGES_FOR_TOPIC_FILTER ? [selectSubscriptionsForMessages(refValues.length), refValues.flat()] : [SELECT_ENABLED_SUBSCRIPTIONS];
        const [locking, enabled] = await tx.send([[LOCK_MESSAGES_BY_REF_SKIP_LOCKED, [refValues]], subscriptionsRead]);
        const locked = (locking as object[]).map((r) => MESSAGE_ROW.decode(r));
        if (locked.length < wanted.size) fallbacks.add('skipped-locked');
        // The locking read sees the latest commit: a message already decided (a confirm retried) is left out.
        const prepared = locked.filter((r) => r.status === 'prepared').sort((a, b) => (a.seq < b.seq ? -1 : 1));
        if (prepared.length === 0) return applied;
        const set = decidedColumns('confirmed', now);
        const stored = prepared.map((row) => ({ ...row, stored: toMessage({ ...row, ...set }) }));
        // The rows are locked, so the UPDATE changes each of them; the guard makes sure before anything commits.
        const confirm: Statement[] = [[CONFIRM_PREPARED, [now, now, prepared.map((r) => r.seq)]], [FAIL_UNLESS_ROW_COUNT, [prepared.length]]];
        const { fanOuts } = await foldedFanOut(tx, enabledSubscriptions(enabled), stored, now, hold, confirm, { commit: true });
        statements++;
        for (const row of stored) applied.set(refKey(row), { message: row.stored, ...(fanOuts.get(row.seq) ?? noFanOut()) });
        return applied;
      }, leasedIn, { readCommitted: true }), BATCH_RETRY.attempts, BATCH_RETRY.options);
    } catch (error) {
      this.onBatch({ kind: 'confirm', size: refs.length, statements: 0, fallbacks: ['failed'], error });
      return refs.map(() => undefined);
    }
    this.onBatch({ kind: 'confirm', size: refs.length, statements, fallbacks: [...fallbacks] });
    const answered = new Set<string>();
    return refs.map((ref) => {
      const key = refKey(ref);
      if (answered.has(key)) return undefined;
      answered.add(key);
      return confirmed.get(key);
    });
  }
}

/** How many deliveries a batch's fan-outs leased to this process. */
function leasedIn(fanOuts: Map<unknown, FanOut>): number {
  let n = 0;
  for (const f of fanOuts.values()) n += f.leased.length;
  return n;
}
