import { createHash, randomUUID } from 'node:crypto';
import { and, asc, desc, eq, inArray, lt, lte, sql, type SQL } from 'drizzle-orm';
import {
  afterUnknown,
  canonicalJson,
  decide,
  nextCheckDelayMs,
  type CheckAnswer,
  idempotencyContent,
  resolveCheckPolicy,
  targetStatus,
  type CheckPolicy,
  type Decision,
  type MessageStatus,
  type PrepareRequest,
  type StoredMessage,
} from '@herald/domain';
import type { HeraldDb } from './connection';
import { hasErrorCode } from './driver-errors';
import { BATCH_RETRY, DeliveryRepository, LeaseHold, withDeadlockRetry, type DeliveryJobRef, type DeliverySummary, type FanOut, type FanOutLeases, type LeasedDelivery, type Tx } from './delivery.repository';
import { checkAttempts, messages, type CheckAttemptRow, type MessageRow } from './schema/messages';
import { CONFIRM_PREPARED, INSERT_MESSAGES, LOCK_MESSAGES_SKIP_LOCKED, messageValues, SELECT_MESSAGE, SELECT_MESSAGES_BY_ID, SELECT_PREPARED_IDS, toMessageRow, type MessageRecord } from './message.statements';
import { runSql, selectSql } from './sql.runner';
import { STALLED_BATCH_MS, WriteBatcher, type OnWriteBatch, type WriteBatchFallback } from './write.batcher';

export type PrepareOutcome =
  /** `deliveries`: those created with a direct publish, as committed (none for a prepare). */
  | { kind: 'created'; message: StoredMessage; jobs: DeliveryJobRef[]; deliveries: DeliverySummary[] }
  | { kind: 'duplicate'; message: StoredMessage }
  | { kind: 'conflict'; message: StoredMessage };

export type DecisionResult =
  /** `message` and `deliveries` are as the decision committed them (read inside its transaction). */
  | { kind: 'applied'; from: MessageStatus; message: StoredMessage; jobs: DeliveryJobRef[]; deliveries: DeliverySummary[] }
  | { kind: 'already'; message: StoredMessage }
  | { kind: 'conflict'; message: StoredMessage }
  | { kind: 'not_found' };

/** What Herald records with a prepared message besides the producer's request. */
export interface PrepareMeta {
  /**
   * The W3C traceparent of the span storing it. Not part of the content hash: a retry from
   * another trace is still the same message.
   */
  traceParent?: string | null;
}

export interface ListFilter {
  status?: MessageStatus;
  topic?: string;
  limit: number;
  /** Return messages older than this sequence number (exclusive). */
  beforeSeq?: bigint;
  createdBefore?: Date;
}

/** One check round of one message, claimed by one sweeper: the job that makes check `check`. */
export interface CheckJobRef {
  seq: bigint;
  messageId: string;
  check: number;
}

export interface CheckCall {
  startedAt: Date;
  durationMs: number;
  answer: CheckAnswer;
  statusCode: number | null;
  error: string | null;
}

export type CheckOutcome =
  | { kind: 'confirmed'; jobs: DeliveryJobRef[] }
  | { kind: 'cancelled' | 'held' }
  | { kind: 'ask-again'; nextCheckAt: Date }
  /** The message was decided (or checked) meanwhile: the call is recorded, nothing else changes. */
  | { kind: 'stale' };

export interface CheckAttemptRecord {
  check: number;
  at: Date;
  durationMs: number;
  answer: CheckAnswer;
  statusCode: number | null;
  error: string | null;
}

export interface MessageRepositoryOptions {
  defaults?: CheckPolicy;
  /** The longest wait between two checks (default 10 min). */
  checkIntervalCapMs?: number;
  /** Called once per committed state change, for metrics. */
  onTransition?: (from: MessageStatus | 'new', to: MessageStatus) => void;
  now?: () => Date;
  /**
   * Group commit: prepares, direct publishes and confirms that arrive while a batch of their kind
   * is being written wait and are written together. One batch of a kind runs at a time while
   * batches take less than `stalledBatchMs`; past that, up to this many at once (default 4; 0
   * writes each request on its own).
   */
  maxBatchesInFlight?: number;
  /** How long a batch runs before the next of its kind may start beside it (default {@link STALLED_BATCH_MS}). */
  stalledBatchMs?: number;
  /** Writes of each kind that may wait for a batch before new ones are refused (default 2,000). */
  maxQueuedWrites?: number;
  /** Called once per prepare, direct-publish or confirm batch, with what it did (metrics, logs, tests). */
  onBatch?: OnWriteBatch;
}

/** How a prepare batch answered one row. */
type InsertAnswer =
  | { kind: 'stored' }
  /** The id was taken (by an earlier message, or an earlier copy in the same batch). */
  | { kind: 'exists'; row: MessageRow }
  | { kind: 'failed'; error: unknown };

/**
 * How a direct-publish batch answered one message: stored with its deliveries (committed), or
 * its id was taken. Undefined: the batch could not publish it, and its caller publishes it alone.
 */
type PublishAnswer = { kind: 'stored'; fanOut: FanOut } | { kind: 'exists'; row: MessageRow } | undefined;

/** A confirm applied by a batch: the message and its deliveries as committed. */
interface AppliedConfirm extends FanOut {
  message: StoredMessage;
}

type NewMessageRow = Omit<MessageRow, 'seq'>;

const UNDECIDED: MessageStatus[] = ['prepared', 'unresolved'];

/** Messages in MySQL. Every state change is one conditional UPDATE, so racing calls cannot both win. */
export class MessageRepository {
  private readonly defaults?: CheckPolicy;
  private readonly checkIntervalCapMs?: number;
  private readonly onTransition: NonNullable<MessageRepositoryOptions['onTransition']>;
  private readonly now: () => Date;
  private readonly inserts?: WriteBatcher<NewMessageRow, InsertAnswer>;
  private readonly onBatch: OnWriteBatch;
  /** Bytes a prepare batch may weigh; set from `@@max_allowed_packet` by the first batch. */
  private maxInsertWeight = DEFAULT_INSERT_WEIGHT;
  private packetRead?: Promise<void>;
  private readonly confirms?: WriteBatcher<string, AppliedConfirm | undefined>;
  private readonly publishes?: WriteBatcher<NewMessageRow, PublishAnswer>;
  private fanOutLeases?: FanOutLeases;

  constructor(
    private readonly db: HeraldDb,
    options: MessageRepositoryOptions = {},
  ) {
    this.defaults = options.defaults;
    this.checkIntervalCapMs = options.checkIntervalCapMs;
    this.onTransition = options.onTransition ?? (() => undefined);
    this.now = options.now ?? (() => new Date());
    this.onBatch = options.onBatch ?? (() => undefined);
    const maxInFlight = options.maxBatchesInFlight ?? 4;
    const maxQueued = options.maxQueuedWrites;
    const stalledAfterMs = options.stalledBatchMs ?? STALLED_BATCH_MS;
    if (maxInFlight > 0) {
      const batches = { maxInFlight, maxBatch: 200, maxQueued, stalledAfterMs };
      this.inserts = new WriteBatcher((rows) => this.insertMany(rows), { ...batches, maxWeight: () => this.maxInsertWeight, weight: insertWeight });
      this.confirms = new WriteBatcher((ids) => this.confirmMany(ids), batches);
      this.publishes = new WriteBatcher((rows) => this.publishMany(rows), { ...batches, maxWeight: () => this.maxInsertWeight, weight: insertWeight });
    }
  }

  /**
   * With a process that attempts deliveries itself (see `FanOutLeases`): confirm and direct-publish
   * batches create the deliveries due now leased to it, as many as it takes, and hand them over
   * once committed. Undefined turns it off.
   */
  leaseFanOut(leases: FanOutLeases | undefined): void {
    this.fanOutLeases = leases;
  }

  /**
   * Stores a prepared message (or a confirmed one for a direct publish). A retry with the same
   * id and the same content returns the stored message; different content is a conflict.
   */
  async prepare(request: PrepareRequest, meta: PrepareMeta = {}): Promise<PrepareOutcome> {
    const now = this.now();
    const policy = resolveCheckPolicy(request, this.defaults);
    const direct = request.confirm === true;
    const status: MessageStatus = direct ? 'confirmed' : 'prepared';
    const row = {
      id: request.id ?? randomUUID(),
      topic: request.topic,
      key: request.key ?? null,
      payload: JSON.stringify(request.payload),
      headers: JSON.stringify(request.headers ?? {}),
      status,
      checkUrl: request.checkUrl ?? null,
      ...policy,
      delayMs: request.delayMs ?? 0,
      checks: 0,
      nextCheckAt: direct ? null : new Date(now.getTime() + policy.checkAfterMs),
      contentHash: contentHash(request),
      createdAt: now,
      updatedAt: now,
      confirmedAt: direct ? now : null,
      cancelledAt: null,
      traceParent: meta.traceParent ?? null,
    } satisfies Omit<MessageRow, 'seq'>;

    let fanOut: { jobs: DeliveryJobRef[]; deliveries: DeliverySummary[] } = { jobs: [], deliveries: [] };
    try {
      if (direct) {
        const answer = await this.publishes?.submit(row);
        if (answer?.kind === 'exists') return retryOrConflict(answer.row, row);
        if (answer) fanOut = answer.fanOut;
        else {
          // Not published by a batch (none, or it fell back): the message and its deliveries
          // commit together on their own. The INSERT can be a deadlock victim of a batch holding
          // gap locks near its id (rolled back whole, so it is simply run again).
          fanOut = await withDeadlockRetry(() => this.db.transaction(async (tx) => {
            await tx.insert(messages).values(row);
            return DeliveryRepository.fanOutWithSummaries(tx, row, now);
          }));
        }
      } else if (this.inserts) {
        const answer = await this.inserts.submit(row);
        if (answer.kind === 'failed') throw answer.error;
        if (answer.kind === 'exists') return retryOrConflict(answer.row, row);
      } else {
        await this.db.insert(messages).values(row);
      }
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      const existing = await this.findRow(row.id);
      // The row that caused the duplicate cannot disappear: messages are never deleted.
      if (!existing) throw error;
      return retryOrConflict(existing, row);
    }
    this.onTransition('new', status);
    return { kind: 'created', message: toMessage({ ...row, seq: 0n }), ...fanOut };
  }

  async findById(id: string): Promise<StoredMessage | undefined> {
    const row = await this.findRow(id);
    return row && toMessage(row);
  }

  /**
   * Confirms or cancels. The UPDATE only matches an undecided message, so of two racing calls
   * exactly one changes the row; the loser re-reads and reports `already` or `conflict`.
   */
  async decide(id: string, decision: Decision): Promise<DecisionResult> {
    const to = targetStatus(decision);
    // Most decisions find a prepared message: try that first (a confirm in a group commit).
    let from: MessageStatus | undefined = 'prepared';
    if (decision === 'confirm' && this.confirms) {
      const applied = await this.confirms.submit(id);
      if (applied) {
        this.onTransition('prepared', 'confirmed');
        return { kind: 'applied', from: 'prepared', ...applied };
      }
      // Not prepared (or the batch failed): decide on its own, from what the row says now.
      from = undefined;
    }
    for (let attempt = 0; attempt < UNDECIDED.length + 1; attempt++) {
      const applied = from && (await this.transition(id, from, to));
      if (from && applied) {
        this.onTransition(from, to);
        return { kind: 'applied', from, ...applied };
      }
      const current = await this.findById(id);
      if (!current) return { kind: 'not_found' };
      const outcome = decide(current.status, decision);
      if (outcome !== 'apply') return { kind: outcome, message: current };
      from = current.status;
    }
    // Only reachable if the row keeps changing between our reads, which no transition allows.
    throw new Error(`message ${id} did not settle while applying ${decision}`);
  }

  async list(filter: ListFilter): Promise<{ items: StoredMessage[]; nextBeforeSeq: bigint | null }> {
    const where: SQL[] = [];
    if (filter.status) where.push(eq(messages.status, filter.status));
    if (filter.topic) where.push(eq(messages.topic, filter.topic));
    if (filter.beforeSeq !== undefined) where.push(lt(messages.seq, filter.beforeSeq));
    if (filter.createdBefore !== undefined) where.push(lt(messages.createdAt, filter.createdBefore));
    const rows = await this.db
      .select()
      .from(messages)
      .where(where.length ? and(...where) : undefined)
      .orderBy(desc(messages.seq))
      .limit(filter.limit + 1);
    const page = rows.slice(0, filter.limit);
    const last = page.at(-1);
    return { items: page.map(toMessage), nextBeforeSeq: rows.length > filter.limit && last ? last.seq : null };
  }

  /**
   * One conditional UPDATE; for a confirm, the deliveries are created in the same transaction.
   * Returns the message and deliveries as committed (read under the UPDATE's row lock, so no
   * read-back after the commit), or undefined if the message was not in `from`.
   */
  private async transition(id: string, from: MessageStatus, to: MessageStatus) {
    const now = this.now();
    return withDeadlockRetry(() => this.db.transaction(async (tx) => {
      const [result] = await tx
        .update(messages)
        .set(decidedColumns(to, now))
        .where(and(eq(messages.id, id), inArray(messages.status, [from])));
      if (result.affectedRows !== 1) return undefined;
      const [row] = await tx.select().from(messages).where(eq(messages.id, id));
      if (!row) throw new Error(`message ${id} vanished inside its own transaction`);
      const message = toMessage(row);
      if (to !== 'confirmed') return { message, jobs: [], deliveries: [] };
      return { message, ...(await DeliveryRepository.fanOutWithSummaries(tx, row, now)) };
    }));
  }

  /**
   * Group commit of prepares: one multi-row INSERT (one commit) for the batch. A failed statement
   * inserted nothing (InnoDB rolls a statement back whole), so:
   * - on a duplicate id, one read finds the ids already stored, those rows answer from it (200 or
   *   409 for their callers) and one INSERT of the rest is tried again (a few rounds at most);
   * - on any other error, the rows are inserted one by one in one transaction, where a failing
   *   statement rolls back alone: each row gets its own answer, all of them after the COMMIT.
   * An id repeated within the batch is inserted once, from its first copy; the later copies
   * answer after the commit, as duplicates of (or conflicts with) the first. A row answers
   * `stored` only once a commit holding it succeeded; if the connection is lost, the batch fails.
   */
  private async insertMany(rows: NewMessageRow[]): Promise<InsertAnswer[]> {
    await this.readPacketLimit();
    const first = firstCopies(rows);
    // A deadlocked INSERT (a victim of gap locks near its ids) was rolled back whole: run it again.
    const insert = (pending: NewMessageRow[]) => withDeadlockRetry(() => runSql(this.db, INSERT_MESSAGES, [pending.map(messageValues)]), BATCH_RETRY.attempts, BATCH_RETRY.options);
    const rounds = await insertInRounds([...first.values()], insert, (ids) => this.findRows(ids));
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
    if (rest.length > 0) {
      // If the multi-row INSERT committed but its answer was lost (connection dropped), each row
      // now meets itself as a duplicate and answers 200 with what it stored: correct, but its
      // `new` transition goes uncounted. Thrown here (connection lost, deadlock twice): the whole
      // batch fails, and no row was answered 2xx.
      const own = await this.insertOneByOne(rest);
      for (const [row, answer] of own) answers.set(row, answer);
    }
    if (rows.length > first.size) fallbacks.add('duplicate');
    this.onBatch({ kind: 'prepare', size: rows.length, statements: rounds.statements, fallbacks: [...fallbacks], ...(error !== undefined && { error }) });
    return rows.map((row): InsertAnswer => {
      const own = answers.get(row);
      if (own) return own;
      // A later copy of an id in the batch: it answers as a retry of the first would.
      const original = first.get(row.id) as NewMessageRow;
      const theirs = answers.get(original) ?? { kind: 'failed', error: new Error(`message ${row.id} got no answer in its batch`) };
      return theirs.kind === 'stored' ? { kind: 'exists', row: { ...original, seq: 0n } } : theirs;
    });
  }

  /**
   * Inserts rows one statement each in one transaction. InnoDB rolls back only a failed
   * statement (a value too long, a duplicate id), so each row fails alone; an error that ends
   * the transaction or the connection (deadlock, lost connection) fails them all. Answers are
   * only returned after COMMIT.
   */
  private async insertOneByOne(rows: NewMessageRow[]): Promise<Map<NewMessageRow, InsertAnswer>> {
    const answers = await withDeadlockRetry(() => this.db.transaction(async (tx) => {
      const own = new Map<NewMessageRow, InsertAnswer | 'duplicate'>();
      for (const row of rows) {
        try {
          await runSql(tx, INSERT_MESSAGES, [[messageValues(row)]]);
          own.set(row, { kind: 'stored' });
        } catch (error) {
          if (endsTransaction(error)) throw error;
          own.set(row, isDuplicateKey(error) ? 'duplicate' : { kind: 'failed', error });
        }
      }
      return own;
    }), BATCH_RETRY.attempts, BATCH_RETRY.options);
    const taken = [...answers].filter(([, a]) => a === 'duplicate').map(([row]) => row.id);
    const existing = taken.length > 0 ? await this.findRows(taken) : new Map<string, MessageRow>();
    const result = new Map<NewMessageRow, InsertAnswer>();
    for (const [row, answer] of answers) {
      if (answer !== 'duplicate') result.set(row, answer);
      else {
        const stored = existing.get(row.id);
        // Messages are never deleted, so the row that was in the way is still there.
        result.set(row, stored ? { kind: 'exists', row: stored } : { kind: 'failed', error: new Error(`message ${row.id} was a duplicate but cannot be read`) });
      }
    }
    return result;
  }

  /** Reads `@@max_allowed_packet` once (again after a failure) and sizes prepare batches from it. */
  private readPacketLimit(): Promise<void> {
    this.packetRead ??= this.db
      .execute(sql`SELECT @@max_allowed_packet AS packet`)
      .then(([rows]) => {
        const packet = Number((rows as unknown as Array<{ packet: unknown }>)[0]?.packet);
        if (Number.isFinite(packet) && packet > 0) this.maxInsertWeight = insertWeightLimit(packet);
      })
      .catch(() => {
        this.packetRead = undefined;
      });
    return this.packetRead;
  }

  private async findRows(ids: string[]): Promise<Map<string, MessageRow>> {
    if (ids.length === 0) return new Map();
    const rows = await selectSql<MessageRecord>(this.db, SELECT_MESSAGES_BY_ID, [[...new Set(ids)]]);
    return new Map(rows.map((r) => [r.id, toMessageRow(r)]));
  }

  /**
   * Group commit of direct publishes: one transaction inserts the batch's messages (already
   * `confirmed`) with one multi-row INSERT and creates all their deliveries (`fanOutMany`: one
   * read of the subscriptions, one multi-row INSERT, one read-back), then commits. A message is
   * answered `stored` only once that COMMIT succeeded. The rounds are those of a prepare batch,
   * each round one transaction: a duplicate id rolls its round back whole, one read answers the
   * ids already stored (200 or 409 for their callers), and the rest are tried again. An id
   * repeated within the batch is published from its first copy; later copies answer after the
   * commit as duplicates of (or conflicts with) it.
   *
   * Any other failure (a value MySQL refuses, a deadlock twice retried, a lost connection) leaves
   * the messages not yet answered to their callers, each published on its own (`prepare`'s single
   * path, which answers for itself: a bad row fails alone). If a COMMIT succeeded but its answer
   * was lost, each of those callers meets its own message as a duplicate and answers 200 with it:
   * its deliveries were committed with it (the reconciler enqueues them), but its `new`
   * transition goes uncounted.
   *
   * Lock order: the messages are inserted in id order, then their deliveries, as every
   * transaction on messages and deliveries locks them, so two batches sharing an id queue
   * rather than cross; a deadlock that still happens (gap locks) is retried.
   */
  private async publishMany(rows: NewMessageRow[]): Promise<PublishAnswer[]> {
    await this.readPacketLimit();
    const now = this.now();
    const first = firstCopies(rows);
    const fallbacks = new Set<WriteBatchFallback>();
    let fanOut = new Map<string, FanOut>();
    let rounds: InsertRounds;
    try {
      rounds = await insertInRounds(
        [...first.values()].sort((a, b) => (a.id < b.id ? -1 : 1)),
        async (pending) => {
          fanOut = await withDeadlockRetry(() => this.leasingTransaction(async (tx, hold) => {
            await runSql(tx, INSERT_MESSAGES, [pending.map(messageValues)]);
            return DeliveryRepository.fanOutMany(tx, pending.map((row) => ({ ...row, stored: toMessage({ ...row, seq: 0n }) })), now, hold);
          }, (fanOuts) => leasedOf(fanOuts.values())), BATCH_RETRY.attempts, BATCH_RETRY.options);
        },
        (ids) => this.findRows(ids),
      );
    } catch (error) {
      // The read of the ids already stored failed: nothing of this round committed.
      this.onBatch({ kind: 'direct', size: rows.length, statements: 0, fallbacks: ['failed'], error });
      return rows.map(() => undefined);
    }
    const answers = new Map<NewMessageRow, PublishAnswer>();
    for (const row of rounds.stored) answers.set(row, { kind: 'stored', fanOut: handedOver(fanOut.get(row.id) ?? { jobs: [], deliveries: [] }) });
    for (const [row, stored] of rounds.taken) answers.set(row, { kind: 'exists', row: stored });
    if (rounds.duplicate || rows.length > first.size) fallbacks.add('duplicate');
    // The rest (`rounds.rest`) have no answer: their callers publish them on their own.
    if (rounds.error !== undefined) fallbacks.add(endsTransaction(rounds.error) ? 'failed' : 'error');
    this.onBatch({ kind: 'direct', size: rows.length, statements: rounds.statements, fallbacks: [...fallbacks], ...(rounds.error !== undefined && { error: rounds.error }) });
    return rows.map((row): PublishAnswer => {
      const original = first.get(row.id) as NewMessageRow;
      const theirs = answers.get(original);
      // A later copy of an id in the batch answers as a retry of the first would.
      return row !== original && theirs?.kind === 'stored' ? { kind: 'exists', row: { ...original, seq: 0n } } : theirs;
    });
  }

  /**
   * One try of a batch transaction whose fan-out may lease deliveries to this process: what it
   * leased runs once it committed; if it failed (or its answer was lost), the promised attempts
   * are given back and nothing runs — the rows' leases then expire and the reconciler takes them.
   */
  private async leasingTransaction<T>(work: (tx: Tx, hold: LeaseHold | undefined) => Promise<T>, leased: (result: T) => LeasedDelivery[]): Promise<T> {
    const hold = this.fanOutLeases && new LeaseHold(this.fanOutLeases);
    let result: T;
    try {
      result = await this.db.transaction((tx) => work(tx, hold));
    } catch (error) {
      hold?.release();
      throw error;
    }
    hold?.started(leased(result));
    return result;
  }

  /**
   * Group commit of confirms: one transaction locks the batch's messages that are still
   * `prepared` (in id order, the lock order every transaction on a message's deliveries uses),
   * confirms them and creates all their deliveries. Rows are locked with SKIP LOCKED, so a
   * message another transaction holds does not hold up the batch. Answers per id: the committed
   * message and deliveries, or undefined for an id the batch did not confirm (unknown, decided,
   * unresolved, held by another transaction, repeated in the batch) — the caller decides those
   * one by one, as before, waiting for the lock alone. If the transaction fails, no id was
   * confirmed by it, and every caller falls back to deciding on its own. (If the COMMIT
   * succeeded but its answer was lost, the callers find their messages confirmed and answer
   * `already`: the transitions are then not counted by `onTransition`.)
   */
  private async confirmMany(ids: string[]): Promise<Array<AppliedConfirm | undefined>> {
    const now = this.now();
    const unique = [...new Set(ids)].sort();
    const fallbacks = new Set<WriteBatchFallback>();
    if (unique.length < ids.length) fallbacks.add('duplicate');
    let statements = 0;
    let confirmed: Map<string, AppliedConfirm>;
    try {
      confirmed = await withDeadlockRetry(() => this.leasingTransaction(async (tx, hold) => {
        statements = 0;
        fallbacks.delete('skipped-locked');
        const applied = new Map<string, AppliedConfirm>();
        // A plain read first, so that only rows still prepared are locked: a decided message
        // (a confirm retried) is not locked and does not make the batch wait.
        const candidates = await selectSql<{ id: string }>(tx, SELECT_PREPARED_IDS, [unique]);
        if (candidates.length === 0) return applied;
        const locked = (await selectSql<MessageRecord>(tx, LOCK_MESSAGES_SKIP_LOCKED, [candidates.map((r) => r.id)])).map(toMessageRow);
        if (locked.length < candidates.length) fallbacks.add('skipped-locked');
        // The locking read sees the latest commit: a message decided since the plain read is left out.
        const prepared = locked.filter((r) => r.status === 'prepared');
        if (prepared.length === 0) return applied;
        const set = decidedColumns('confirmed', now);
        const result = await runSql(tx, CONFIRM_PREPARED, [now, now, prepared.map((r) => r.id)]);
        statements++;
        // The rows are locked: anything else means the batch's view is wrong, so undo it all.
        if (result.affectedRows !== prepared.length) throw new Error(`confirm batch changed ${result.affectedRows} of ${prepared.length} locked messages`);
        const stored = prepared.map((row) => ({ ...row, stored: toMessage({ ...row, ...set }) }));
        const fanOut = await DeliveryRepository.fanOutMany(tx, stored, now, hold);
        for (const row of stored) applied.set(row.id, { message: row.stored, ...(fanOut.get(row.id) ?? { jobs: [], deliveries: [] }) });
        return applied;
      }, (applied) => leasedOf(applied.values())), BATCH_RETRY.attempts, BATCH_RETRY.options);
    } catch (error) {
      this.onBatch({ kind: 'confirm', size: ids.length, statements: 0, fallbacks: ['failed'], error });
      return ids.map(() => undefined);
    }
    this.onBatch({ kind: 'confirm', size: ids.length, statements, fallbacks: [...fallbacks] });
    const answered = new Set<string>();
    return ids.map((id) => {
      if (answered.has(id)) return undefined;
      answered.add(id);
      const applied = confirmed.get(id);
      return applied && handedOver(applied);
    });
  }

  /**
   * Claims up to `limit` prepared messages whose check is due, for one check round each:
   * `FOR UPDATE SKIP LOCKED` lets several sweepers run at once without taking the same rows, and
   * pushing `next_check_at` forward by `leaseMs` keeps a claimed round from being claimed again
   * while its check runs. If the check job is lost, the round is claimed again after the lease.
   */
  async claimDueChecks(limit: number, leaseMs: number): Promise<CheckJobRef[]> {
    const now = this.now();
    return withDeadlockRetry(() => this.db.transaction(async (tx) => {
      const due = await tx
        .select({ seq: messages.seq, id: messages.id, checks: messages.checks })
        .from(messages)
        .where(and(eq(messages.status, 'prepared'), lte(messages.nextCheckAt, now)))
        .orderBy(asc(messages.nextCheckAt))
        .limit(limit)
        .for('update', { skipLocked: true });
      if (due.length === 0) return [];
      await tx
        .update(messages)
        .set({ nextCheckAt: new Date(now.getTime() + leaseMs) })
        .where(inArray(messages.seq, due.map((d) => d.seq)));
      return due.map((d) => ({ seq: d.seq, messageId: d.id, check: d.checks + 1 }));
    }));
  }

  /**
   * Records check `check` and acts on its answer in one transaction, with the same conditional
   * transitions as the API: commit confirms (and fans out), rollback cancels, unknown schedules
   * the next check or, once `maxChecks` are spent, applies `onChecksExhausted`. A message that
   * was decided meanwhile (a late confirm racing the check) is left as it is.
   */
  async recordCheck(ref: CheckJobRef, call: CheckCall): Promise<CheckOutcome> {
    const now = this.now();
    let transition: [MessageStatus, MessageStatus] | undefined;
    const outcome = await withDeadlockRetry(() => this.db.transaction(async (tx): Promise<CheckOutcome> => {
      transition = undefined;
      const [row] = await tx.select().from(messages).where(eq(messages.id, ref.messageId)).for('update');
      await tx.insert(checkAttempts).values({
        messageId: ref.messageId,
        checkNo: ref.check,
        startedAt: call.startedAt,
        durationMs: Math.max(0, Math.round(call.durationMs)),
        answer: call.answer,
        statusCode: call.statusCode,
        error: call.error?.slice(0, 1000) ?? null,
      });
      if (!row || row.status !== 'prepared' || row.checks !== ref.check - 1) return { kind: 'stale' };
      const message = toMessage(row);
      const next = call.answer === 'commit' ? 'confirm' : call.answer === 'rollback' ? 'cancel' : afterUnknown(message, ref.check);
      const checked = { checks: ref.check };
      const settle = async (to: MessageStatus) => {
        await tx.update(messages).set({ ...checked, ...decidedColumns(to, now) }).where(eq(messages.id, ref.messageId));
        transition = ['prepared', to];
      };
      switch (next) {
        case 'confirm':
          await settle('confirmed');
          return { kind: 'confirmed', jobs: await DeliveryRepository.fanOut(tx, message, now) };
        case 'cancel':
          await settle('cancelled');
          return { kind: 'cancelled' };
        case 'hold':
          await settle('unresolved');
          return { kind: 'held' };
        default: {
          const nextCheckAt = new Date(now.getTime() + nextCheckDelayMs(message, ref.check, this.checkIntervalCapMs));
          await tx.update(messages).set({ ...checked, nextCheckAt, updatedAt: now }).where(eq(messages.id, ref.messageId));
          return { kind: 'ask-again', nextCheckAt };
        }
      }
    }));
    if (transition) this.onTransition(...transition);
    return outcome;
  }

  /** The check calls made for a message, oldest first. */
  async checkAttempts(messageId: string): Promise<CheckAttemptRecord[]> {
    const rows: CheckAttemptRow[] = await this.db.select().from(checkAttempts).where(eq(checkAttempts.messageId, messageId)).orderBy(asc(checkAttempts.id));
    return rows.map((r) => ({ check: r.checkNo, at: r.startedAt, durationMs: r.durationMs, answer: r.answer as CheckAnswer, statusCode: r.statusCode, error: r.error }));
  }

  /**
   * How many rows have `status`; with `cap`, counting stops there (the answer is at most `cap`),
   * so a metrics scrape reads a bounded index range however large the backlog grows.
   */
  async countByStatus(status: MessageStatus, cap?: number): Promise<number> {
    const matching = this.db.select({ one: sql`1` }).from(messages).where(eq(messages.status, status));
    const [row] = await this.db.select({ n: sql<string>`COUNT(*)` }).from((cap === undefined ? matching : matching.limit(cap)).as('matching'));
    return Number(row?.n ?? 0);
  }

  private async findRow(id: string): Promise<MessageRow | undefined> {
    const [row] = await selectSql<MessageRecord>(this.db, SELECT_MESSAGE, [id]);
    return row && toMessageRow(row);
  }
}

/**
 * The columns of a message leaving `prepared` for `to`, whoever decided (API, check answer,
 * exhausted checks): no further check, and the decision's own timestamp.
 */
function decidedColumns(to: MessageStatus, now: Date): Partial<MessageRow> {
  return {
    status: to,
    nextCheckAt: null,
    updatedAt: now,
    ...(to === 'confirmed' && { confirmedAt: now }),
    ...(to === 'cancelled' && { cancelledAt: now }),
  };
}

export function contentHash(request: PrepareRequest): string {
  return createHash('sha256').update(canonicalJson(idempotencyContent(request))).digest('hex');
}

export function toMessage(row: MessageRow): StoredMessage {
  return {
    id: row.id,
    topic: row.topic,
    key: row.key,
    payload: JSON.parse(row.payload),
    headers: JSON.parse(row.headers) as Record<string, string>,
    status: row.status as MessageStatus,
    checkUrl: row.checkUrl,
    checkAfterMs: row.checkAfterMs,
    checkIntervalMs: row.checkIntervalMs,
    maxChecks: row.maxChecks,
    onChecksExhausted: row.onChecksExhausted as StoredMessage['onChecksExhausted'],
    delayMs: row.delayMs,
    checks: row.checks,
    nextCheckAt: row.nextCheckAt,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    confirmedAt: row.confirmedAt,
    cancelledAt: row.cancelledAt,
    traceParent: row.traceParent,
  };
}

const isDuplicateKey = (error: unknown) => hasErrorCode(error, ['ER_DUP_ENTRY']);

/**
 * Errors after which a transaction cannot be trusted to go on: InnoDB rolled it back whole (a
 * deadlock; a lock-wait timeout too with `innodb_rollback_on_timeout`, and the statements after
 * it would then commit on their own), or the connection is gone (mysql2 marks those `fatal`).
 * The others (duplicate key, value too long, …) roll back only their statement.
 */
function endsTransaction(error: unknown): boolean {
  if (hasErrorCode(error, ['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT'])) return true;
  for (let e: unknown = error; e instanceof Error; e = e.cause) if ((e as { fatal?: unknown }).fatal === true) return true;
  return false;
}

/** Prepare and direct-publish batches: rounds of multi-row INSERTs tried before the rest goes its own way. */
const INSERT_ROUNDS = 3;

/** What rounds of multi-row INSERTs did with a batch's rows (see {@link insertInRounds}). */
interface InsertRounds {
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
 * Inserts rows (distinct ids) in rounds of one multi-row INSERT each. A failed `insert` stored
 * nothing (InnoDB rolls a statement, and `insert`'s own transaction, back whole), so after a
 * duplicate id one read (`find`) picks out the ids already stored, and the rest are tried again,
 * up to {@link INSERT_ROUNDS} times. Any other error ends the rounds; the caller decides what
 * becomes of the rows left.
 */
async function insertInRounds(
  rows: NewMessageRow[],
  insert: (rows: NewMessageRow[]) => Promise<unknown>,
  find: (ids: string[]) => Promise<Map<string, MessageRow>>,
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
      const existing = await find(pending.map((r) => r.id));
      // The duplicate was not among the ids (cannot happen with one unique key): left to the caller.
      if (existing.size === 0) return { ...rounds, error: e };
      for (const row of pending) {
        const stored = existing.get(row.id);
        if (stored) rounds.taken.set(row, stored);
      }
      rounds.rest = pending.filter((r) => !existing.has(r.id));
    }
  }
  return rounds;
}

/**
 * A fan-out as its caller sees it once the leased deliveries were handed to the inline runner:
 * without them (they carry the subscription's signing secrets, which have no business in an answer).
 */
function handedOver<T extends FanOut>({ leased: _leased, ...rest }: T): Omit<T, 'leased'> {
  return rest;
}

/** The deliveries a batch's fan-outs leased to this process. */
function leasedOf(fanOuts: Iterable<{ leased?: LeasedDelivery[] }>): LeasedDelivery[] {
  return [...fanOuts].flatMap((f) => f.leased ?? []);
}

/** Each id's first row in a batch; later copies answer after it, as its retries would. */
function firstCopies(rows: NewMessageRow[]): Map<string, NewMessageRow> {
  const first = new Map<string, NewMessageRow>();
  for (const row of rows) if (!first.has(row.id)) first.set(row.id, row);
  return first;
}

/** A prepare whose id is already stored: a retry if the content is the same, else a conflict. */
function retryOrConflict(stored: MessageRow, row: NewMessageRow): PrepareOutcome {
  return { kind: stored.contentHash === row.contentHash ? 'duplicate' : 'conflict', message: toMessage(stored) };
}

/** A prepare batch's weight limit until `@@max_allowed_packet` is known. */
const DEFAULT_INSERT_WEIGHT = 4 * 2 ** 20;

/**
 * A row's share of a multi-row INSERT, in bytes: its text columns as UTF-8, twice over because
 * escaping can double them (quotes, backslashes), plus room for the fixed columns and syntax.
 */
export function insertWeight(row: Omit<MessageRow, 'seq'>): number {
  const text = [row.id, row.topic, row.key, row.payload, row.headers, row.checkUrl, row.traceParent];
  return 2 * text.reduce((sum, t) => sum + (t ? Buffer.byteLength(t) : 0), 0) + 512;
}

/**
 * The weight a prepare batch may reach with `packet` = `@@max_allowed_packet`: three quarters
 * of it (the statement's own text aside), but at least 64 KiB, so batching survives a tiny
 * setting, and at most 16 MiB, beyond which one statement gains nothing but a longer lock.
 */
export function insertWeightLimit(packet: number): number {
  return Math.min(16 * 2 ** 20, Math.max(64 * 2 ** 10, Math.floor(packet * 0.75)));
}
