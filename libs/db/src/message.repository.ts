import { randomUUID } from 'node:crypto';
import { and, desc, eq, gte, inArray, lt, sql, type SQL } from 'drizzle-orm';
import { decide, DEFAULT_TENANT, resolveCheckPolicy, targetStatus, type CheckPolicy, type Decision, type MessageStatus, type PrepareRequest, type StoredMessage } from '@herald/domain';
import type { HeraldDb } from './connection';
import { fanOut, fanOutOne, noFanOut, type FanOut } from './fan-out';
import { MessageBatches, type MessageBatchOptions } from './message.batches';
import { MESSAGE_ROW, SELECT_MESSAGE, SELECT_MESSAGE_BY_SEQ, SELECT_TENANTS_OF_ID } from './message.statements';
import { contentHash, decidedColumns, toMessage, type MessageRef, type NewMessageRow } from './rows';
import { messages, type MessageRow } from './schema/messages';
import { selectSql } from './sql.runner';
import { quietly } from './write.batcher';
import { isDuplicateKey, withDeadlockRetry } from './transactions';
import { writeAudit, type AuditEntry } from './audit.repository';


/** A stored message with its `seq`, which names it to its deliveries and check attempts. */
export type FoundMessage = StoredMessage & { seq: bigint };

export type PrepareOutcome =
  /** `fanOut`: the deliveries a direct publish created, as committed (none for a prepare). */
  | { kind: 'created'; message: StoredMessage; fanOut: FanOut }
  | { kind: 'duplicate'; message: FoundMessage }
  | { kind: 'conflict'; message: FoundMessage };

export type DecisionResult =
  /** `message` and `fanOut` are as the decision committed them (read inside its transaction). */
  | { kind: 'applied'; from: MessageStatus; message: StoredMessage; fanOut: FanOut }
  | { kind: 'already'; message: FoundMessage }
  | { kind: 'conflict'; message: FoundMessage }
  | { kind: 'not_found' };

/** What Herald records with a prepared message besides the producer's request. */
export interface PrepareMeta {
  /** The tenant the message belongs to (the caller's); `default` when not given. */
  tenant?: string;
  /** The W3C traceparent of the span storing it; not part of the content hash. */
  traceParent?: string | null;
}

export interface ListFilter {
  tenant?: string;
  status?: MessageStatus;
  topic?: string;
  key?: string;
  limit: number;
  /** Return messages older than this sequence number (exclusive). */
  beforeSeq?: bigint;
  createdBefore?: Date;
  /** Payload bytes the page may carry: it ends early beyond them (always with at least one message). */
  maxBytes?: number;
  createdAfter?: Date;
}

export interface MessageRepositoryOptions extends MessageBatchOptions {
  defaults?: CheckPolicy;
  /** Called once per committed state change, with the message's tenant, for metrics. */
  onTransition?: (from: MessageStatus | 'new', to: MessageStatus, tenant: string) => void;
}

const UNDECIDED: MessageStatus[] = ['prepared', 'unresolved'];

/**
 * Messages as the API sees them: prepare, confirm or cancel, find and list. Every state change is
 * one conditional UPDATE, so of racing calls exactly one wins; writes go through group commit
 * unless `maxBatchesInFlight` is 0.
 */
export class MessageRepository {
  private readonly onTransition: NonNullable<MessageRepositoryOptions['onTransition']>;
  private readonly now: () => Date;
  private readonly batches?: MessageBatches;

  constructor(
    private readonly db: HeraldDb,
    private readonly options: MessageRepositoryOptions = {},
  ) {
    this.onTransition = quietly(options.onTransition);
    this.now = options.now ?? (() => new Date());
    if ((options.maxBatchesInFlight ?? 4) > 0) this.batches = new MessageBatches(db, options);
  }

  /**
   * Stores a prepared message (or a confirmed one, with its deliveries, for a direct publish). The
   * same id with the same content returns the stored message; different content is a conflict.
   */
  async prepare(request: PrepareRequest, meta: PrepareMeta = {}): Promise<PrepareOutcome> {
    const row = this.newRow(request, meta);
    let created = noFanOut();
    try {
      if (row.status === 'confirmed') {
        const answer = await this.batches?.publish(row);
        if (answer?.kind === 'exists') return retryOrConflict(answer.row, row);
        // Not published by a batch (none, or it fell back): message and deliveries commit together alone.
        created = answer?.fanOut ?? (await this.publishAlone(row));
      } else if (this.batches) {
        const answer = await this.batches.insert(row);
        if (answer.kind === 'failed') throw answer.error;
        if (answer.kind === 'exists') return retryOrConflict(answer.row, row);
      } else {
        await this.db.insert(messages).values(row);
      }
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      const existing = await this.findRow(row);
      // Purged between the INSERT and this read (its retention ran out): the id is free again.
      if (!existing) return this.prepare(request, meta);
      return retryOrConflict(existing, row);
    }
    this.onTransition('new', row.status as MessageStatus, row.tenant);
    return { kind: 'created', message: toMessage(row), fanOut: created };
  }

  /** The message `ref.id` of tenant `ref.tenant`; `seq` names it to its deliveries and checks. */
  async find(ref: MessageRef): Promise<FoundMessage | undefined> {
    const row = await this.findRow(ref);
    return row && { ...toMessage(row), seq: row.seq };
  }

  async findBySeq(seq: bigint): Promise<FoundMessage | undefined> {
    const [record] = await selectSql<object>(this.db, SELECT_MESSAGE_BY_SEQ, [seq]);
    const row = record && MESSAGE_ROW.decode(record);
    return row && { ...toMessage(row), seq: row.seq };
  }

  /** The tenants holding a message with this id, by name. */
  async tenantsOf(id: string): Promise<string[]> {
    const rows = await selectSql<{ tenant: string }>(this.db, SELECT_TENANTS_OF_ID, [id]);
    return rows.map((r) => r.tenant);
  }

  /**
   * Confirms or cancels. The UPDATE only matches an undecided message, so of two racing calls
   * exactly one changes the row; the loser re-reads and reports `already` or `conflict`.
   * An operator's decision (`audit`) is recorded in the audit log in the transaction that applies
   * it, or on its own with what stopped it.
   */
  async decide(ref: MessageRef, decision: Decision, audit?: AuditEntry): Promise<DecisionResult> {
    const result = await this.decideOnce(ref, decision, audit);
    if (audit && result.kind !== 'applied') {
      const outcome = result.kind === 'not_found' ? 'not found' : result.kind === 'already' ? `already ${result.message.status}` : `refused: message is ${result.message.status}`;
      await writeAudit(this.db, audit, outcome, this.now());
    }
    return result;
  }

  private async decideOnce(ref: MessageRef, decision: Decision, audit: AuditEntry | undefined): Promise<DecisionResult> {
    const to = targetStatus(decision);
    // Most decisions find a prepared message: try that first (a confirm in a group commit).
    // An audited one skips the group commit: its audit row must join the same transaction.
    let from: MessageStatus | undefined = 'prepared';
    if (decision === 'confirm' && this.batches && !audit) {
      const applied = await this.batches.confirm(ref);
      if (applied) {
        this.onTransition('prepared', 'confirmed', ref.tenant);
        const { message, ...created } = applied;
        return { kind: 'applied', from: 'prepared', message, fanOut: created };
      }
      // Not prepared (or the batch failed): decide on its own, from what the row says now.
      from = undefined;
    }
    for (let attempt = 0; attempt < UNDECIDED.length + 1; attempt++) {
      const applied = from && (await this.transition(ref, from, to, audit));
      if (from && applied) {
        this.onTransition(from, to, ref.tenant);
        return { kind: 'applied', from, ...applied };
      }
      const current = await this.find(ref);
      if (!current) return { kind: 'not_found' };
      const outcome = decide(current.status, decision);
      if (outcome !== 'apply') return { kind: outcome, message: current };
      from = current.status;
    }
    // Only reachable if the row keeps changing between our reads, which no transition allows.
    throw new Error(`message ${ref.id} of ${ref.tenant} did not settle while applying ${decision}`);
  }

  async list(filter: ListFilter): Promise<{ items: FoundMessage[]; nextBeforeSeq: bigint | null }> {
    const where: SQL[] = [];
    if (filter.tenant) where.push(eq(messages.tenant, filter.tenant));
    if (filter.status) where.push(eq(messages.status, filter.status));
    if (filter.topic) where.push(eq(messages.topic, filter.topic));
    if (filter.key) where.push(eq(messages.key, filter.key));
    if (filter.createdAfter !== undefined) where.push(gte(messages.createdAt, filter.createdAfter));
    if (filter.beforeSeq !== undefined) where.push(lt(messages.seq, filter.beforeSeq));
    if (filter.createdBefore !== undefined) where.push(lt(messages.createdAt, filter.createdBefore));
    const condition = where.length ? and(...where) : undefined;
    if (filter.maxBytes === undefined) {
      const rows = await this.db.select().from(messages).where(condition).orderBy(desc(messages.seq)).limit(filter.limit + 1);
      const page = rows.slice(0, filter.limit);
      const last = page.at(-1);
      return { items: page.map(found), nextBeforeSeq: rows.length > filter.limit && last ? last.seq : null };
    }
    // Sized first, reading lengths only: a page of large payloads is never held to learn it is too large.
    const sizes = await this.db
      .select({ seq: messages.seq, bytes: sql<string>`LENGTH(${messages.payload})` })
      .from(messages)
      .where(condition)
      .orderBy(desc(messages.seq))
      .limit(filter.limit + 1);
    const fit = fitting(sizes.slice(0, filter.limit).map((r) => Number(r.bytes)), filter.maxBytes);
    const kept = sizes.slice(0, fit);
    if (kept.length === 0) return { items: [], nextBeforeSeq: null };
    // Exactly the measured rows: a row that changed meanwhile is left out rather than read unmeasured.
    const rows = await this.db
      .select()
      .from(messages)
      .where(inArray(messages.seq, kept.map((r) => r.seq)))
      .orderBy(desc(messages.seq));
    const last = kept.at(-1) as { seq: bigint };
    return { items: rows.map(found), nextBeforeSeq: sizes.length > fit ? last.seq : null };
  }

  /** How many rows have `status`, counting no further than `cap` (a scrape reads a bounded range). */
  async countByStatus(status: MessageStatus, cap?: number): Promise<number> {
    const matching = this.db.select({ one: sql`1` }).from(messages).where(eq(messages.status, status));
    const [row] = await this.db.select({ n: sql<string>`COUNT(*)` }).from((cap === undefined ? matching : matching.limit(cap)).as('matching'));
    return Number(row?.n ?? 0);
  }

  private newRow(request: PrepareRequest, meta: PrepareMeta): NewMessageRow {
    const now = this.now();
    const policy = resolveCheckPolicy(request, this.options.defaults);
    const direct = request.confirm === true;
    return {
      tenant: meta.tenant ?? DEFAULT_TENANT,
      id: request.id ?? randomUUID(),
      topic: request.topic,
      key: request.key ?? null,
      payload: JSON.stringify(request.payload),
      headers: JSON.stringify(request.headers ?? {}),
      status: direct ? 'confirmed' : 'prepared',
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
    };
  }

  /** A direct publish on its own; a deadlock victim of a batch's gap locks was rolled back whole and runs again. */
  private publishAlone(row: NewMessageRow): Promise<FanOut> {
    return withDeadlockRetry(() =>
      this.db.transaction(async (tx) => {
        const [inserted] = await tx.insert(messages).values(row);
        return fanOutOne(tx, { ...row, seq: BigInt(inserted.insertId) }, row.createdAt);
      }),
    );
  }

  /**
   * One conditional UPDATE; a confirm creates the deliveries in the same transaction. Returns the
   * message and deliveries as committed, or undefined if the message was not in `from`.
   */
  private async transition(ref: MessageRef, from: MessageStatus, to: MessageStatus, audit?: AuditEntry): Promise<{ message: StoredMessage; fanOut: FanOut } | undefined> {
    const now = this.now();
    return withDeadlockRetry(() =>
      this.db.transaction(async (tx) => {
        const mine = and(eq(messages.tenant, ref.tenant), eq(messages.id, ref.id));
        const [result] = await tx.update(messages).set(decidedColumns(to, now)).where(and(mine, inArray(messages.status, [from])));
        if (result.affectedRows !== 1) return undefined;
        const [row] = await tx.select().from(messages).where(mine);
        if (!row) throw new Error(`message ${ref.id} vanished inside its own transaction`);
        const message = toMessage(row);
        if (audit) await writeAudit(tx, audit, `${from} → ${to}`, now);
        return { message, fanOut: to === 'confirmed' ? ((await fanOut(tx, [row], now)).get(row.seq) ?? noFanOut()) : noFanOut() };
      }),
    );
  }

  private async findRow(ref: MessageRef): Promise<MessageRow | undefined> {
    const [row] = await selectSql<object>(this.db, SELECT_MESSAGE, [ref.tenant, ref.id]);
    return row && MESSAGE_ROW.decode(row);
  }
}

const found = (row: MessageRow): FoundMessage => ({ ...toMessage(row), seq: row.seq });

/** How many of `sizes` (newest first) fit in `maxBytes`: at least one, so a listing always moves on. */
function fitting(sizes: number[], maxBytes: number): number {
  let n = 0;
  let total = 0;
  for (const size of sizes) {
    total += size;
    if (n > 0 && total > maxBytes) break;
    n++;
  }
  return Math.max(1, n);
}

/** A prepare whose id is already stored: a retry if the content is the same, else a conflict. */
function retryOrConflict(stored: MessageRow, row: NewMessageRow): PrepareOutcome {
  return { kind: stored.contentHash === row.contentHash ? 'duplicate' : 'conflict', message: { ...toMessage(stored), seq: stored.seq } };
}
