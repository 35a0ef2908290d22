import { and, asc, desc, eq, gte, inArray, isNull, lt, lte, or, sql } from 'drizzle-orm';
import type { MySqlTransaction } from 'drizzle-orm/mysql-core';
import {
  nextAttemptDelayMs,
  topicMatches,
  type AttemptResult,
  type DeliveryStatus,
  type SigningSecrets,
  type StoredMessage,
  type Subscription,
  type TargetType,
} from '@herald/domain';
import type { HeraldDb } from './connection';
import { hasErrorCode } from './driver-errors';
import {
  attemptResultCases,
  attemptResultValues,
  attemptValues,
  CLAIM_DELIVERY,
  deliveryInserts,
  INSERT_ATTEMPTS,
  INSERT_DELIVERIES,
  LOCK_DELIVERIES_FOR_CLAIM,
  LOCK_DELIVERIES_SKIP_LOCKED,
  LOCK_MESSAGE_IDS,
  LOCK_MESSAGE_IDS_SKIP_LOCKED,
  newDeliveryValues,
  RECORD_ATTEMPT,
  recordAttempts,
  ROLL_UP_MESSAGE_STATUS,
  SELECT_CONTEXTS,
  SELECT_NEW_DELIVERIES,
  setLeases,
  toDeliveryRow,
  type AttemptResultSet,
  type ContextRecord,
  type DeliveryStateRecord,
} from './delivery.statements';
import { toMessageRow } from './message.statements';
import { deliveries, deliveryAttempts, type DeliveryAttemptRow, type DeliveryRow } from './schema/deliveries';
import { runSql, selectSql, toDateOrNull, toNumber, type SqlExecutor } from './sql.runner';
import { SubscriptionRepository, withSecrets } from './subscription.repository';
import { toSubscriptionRow } from './subscription.statements';
import { toMessage } from './message.repository';
import { STALLED_BATCH_MS, WriteBatcher, type OnWriteBatch, type WriteBatchFallback } from './write.batcher';

/** What a job names: one attempt of one delivery. Stale or duplicate jobs no longer match the row. */
export interface DeliveryJobRef {
  deliveryId: number;
  generation: number;
  /** Attempts already made in this generation; the job makes attempt `attempt + 1`. */
  attempt: number;
  runAt: Date;
}

export interface DeliverySummary {
  id: number;
  subscriptionId: string;
  targetType: TargetType;
  status: DeliveryStatus;
  attempts: number;
  lastError: string | null;
  lastStatusCode: number | null;
  nextAttemptAt: Date | null;
  deliveredAt: Date | null;
  deadAt: Date | null;
}

export interface AttemptRecord {
  generation: number;
  attempt: number;
  startedAt: Date;
  durationMs: number;
  ok: boolean;
  statusCode: number | null;
  error: string | null;
  responseExcerpt: string | null;
}

/** Everything one attempt needs, read once. `subscription` is undefined if it was deleted. */
export interface AttemptContext {
  delivery: DeliveryRow;
  message: StoredMessage;
  subscription?: Subscription & SigningSecrets;
}

export type AttemptOutcome =
  | { kind: 'delivered' }
  | { kind: 'retry'; job: DeliveryJobRef }
  | { kind: 'dead'; reason: string }
  | { kind: 'stale' };

/** The deliveries a confirm created: the jobs to enqueue and the API's view of them. */
export interface FanOut {
  /** To schedule: every delivery created, except those leased to this process (`leased`). */
  jobs: DeliveryJobRef[];
  deliveries: DeliverySummary[];
  /** Created with their lease held by this process, which attempts them once the commit succeeded. */
  leased?: LeasedDelivery[];
}

/** A delivery created with its lease taken, and everything its first attempt needs. */
export interface LeasedDelivery {
  job: DeliveryJobRef;
  context: AttemptContext & { subscription: Subscription & SigningSecrets };
}

/**
 * A process that attempts deliveries itself as soon as the transaction creating them commits (the
 * inline dispatcher). That transaction then takes their lease too: the attempt needs no claim
 * transaction and no context read, and the row is protected from every other worker exactly as
 * by a claim. If this process dies first, the lease expires and the reconciler enqueues the row.
 */
export interface FanOutLeases {
  /** Promises up to `wanted` attempts, synchronously; returns how many it promised. */
  reserve(wanted: number): number;
  /** Gives back promised attempts whose transaction did not commit. */
  release(count: number): void;
  /** How long the lease on a delivery to `subscription` lasts (the send's timeout and a margin). */
  leaseMs(subscription: Subscription): number;
  /** Starts a leased delivery's attempt, in a promised slot, after its commit. */
  run(leased: LeasedDelivery): void;
}

/**
 * The attempts one transaction promised (one per try of it: a retried transaction takes a new
 * one). Exactly one of `started` (it committed) or `release` (it did not) follows.
 */
export class LeaseHold {
  private promised = 0;

  constructor(private readonly leases: FanOutLeases) {}

  take(wanted: number): number {
    const granted = this.leases.reserve(wanted);
    this.promised += granted;
    return granted;
  }

  leaseMs(subscription: Subscription): number {
    return this.leases.leaseMs(subscription);
  }

  /** The transaction committed: runs its leased deliveries (the promised slots become runs). */
  started(leased: readonly LeasedDelivery[]): void {
    // Every promised slot is handed over exactly once: to a run, or back.
    this.leases.release(this.promised - leased.length);
    this.promised = 0;
    for (const l of leased) this.leases.run(l);
  }

  /** The transaction failed, or its answer was lost: nothing is run, the rows' leases just expire. */
  release(): void {
    this.leases.release(this.promised);
    this.promised = 0;
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Tx = MySqlTransaction<any, any, any, any>;

const ERROR_MAX = 1000;

/** One attempt's result, ready to write: what the row becomes, and the attempt record. */
interface AttemptWrite {
  job: DeliveryJobRef;
  messageId: string;
  outcome: AttemptOutcome;
  now: Date;
  set: AttemptResultSet;
  attempt: typeof deliveryAttempts.$inferInsert;
}

/** A batch's answer for one write: undefined sends the write its own way (`writeAttempt`). */
type AttemptAnswer = AttemptOutcome | undefined;

/** A claim of one job; the lease length depends on the target, known once the context is read. */
interface ClaimRequest {
  job: DeliveryJobRef;
  leaseMs: (context: AttemptContext) => number;
}

/** `alone`: the row was held elsewhere, so the caller claims it on its own, outside the batch. */
type ClaimAnswer = { context?: AttemptContext; alone?: true } | { error: unknown };

export interface DeliveryRepositoryOptions {
  /**
   * Group commit of attempt results: results that arrive while a batch is being written wait and
   * are written together; one batch at a time while batches take less than `stalledBatchMs`,
   * past that up to this many (default 4; 0 writes each on its own). Claims likewise.
   */
  maxBatchesInFlight?: number;
  /** How long a batch runs before the next may start beside it (default {@link STALLED_BATCH_MS}). */
  stalledBatchMs?: number;
  /** Writes that may wait for a batch before new ones are refused (default 2,000). */
  maxQueuedWrites?: number;
  /** Called once per batch of attempt results, with what it did (metrics, logs, tests). */
  onBatch?: OnWriteBatch;
  /**
   * Batched claims: claims that arrive while this many claim batches run wait and are taken
   * together, one transaction for all of them (default 2; 0 claims each on its own).
   */
  maxClaimBatchesInFlight?: number;
}

/** Deliveries in MySQL: fan-out at confirm, leases while sending, attempts, replay, reconciling. */
export class DeliveryRepository {
  private readonly attempts?: WriteBatcher<AttemptWrite, AttemptAnswer>;
  private readonly onBatch: OnWriteBatch;
  private readonly claims?: WriteBatcher<ClaimRequest, ClaimAnswer>;

  constructor(
    private readonly db: HeraldDb,
    private readonly now: () => Date = () => new Date(),
    options: DeliveryRepositoryOptions = {},
  ) {
    const maxInFlight = options.maxBatchesInFlight ?? 4;
    this.onBatch = options.onBatch ?? (() => undefined);
    const stalledAfterMs = options.stalledBatchMs ?? STALLED_BATCH_MS;
    if (maxInFlight > 0) this.attempts = new WriteBatcher((ws) => this.writeAttempts(ws), { maxInFlight, maxBatch: 200, maxQueued: options.maxQueuedWrites, stalledAfterMs });
    const maxClaimsInFlight = options.maxClaimBatchesInFlight ?? 2;
    if (maxClaimsInFlight > 0) this.claims = new WriteBatcher((rs) => this.claimMany(rs), { maxInFlight: maxClaimsInFlight, maxBatch: 200, stalledAfterMs });
  }

  /**
   * Creates one pending delivery per enabled subscription matching the message's topic. Runs
   * inside the transaction that confirms the message, so a confirmed message always has its
   * deliveries and a rolled-back confirm has none.
   */
  static async fanOut(tx: Tx, message: { id: string; topic: string; delayMs: number }, now: Date): Promise<DeliveryJobRef[]> {
    return (await DeliveryRepository.fanOutWithSummaries(tx, message, now)).jobs;
  }

  /**
   * `fanOut`, also returning the new deliveries as the API shows them, so a confirm can answer
   * from its own transaction instead of reading them back after the commit.
   */
  static async fanOutWithSummaries(tx: Tx, message: { id: string; topic: string; delayMs: number }, now: Date): Promise<FanOut> {
    return (await DeliveryRepository.fanOutMany(tx, [message], now)).get(message.id) ?? { jobs: [], deliveries: [] };
  }

  /**
   * Fan-out for several messages confirmed in one transaction (group commit): one read of the
   * subscriptions, multi-row INSERTs (one unless the rows outweigh `DELIVERY_INSERT_BYTES`) and
   * one read-back for all of them. With `hold`, the deliveries due now of the messages given with
   * their `stored` form are created leased to this process, as many as `hold` grants (see
   * `FanOutLeases`); they come back in `leased`, not `jobs`.
   */
  static async fanOutMany(
    tx: Tx,
    batch: ReadonlyArray<{ id: string; topic: string; delayMs: number; stored?: StoredMessage }>,
    now: Date,
    hold?: LeaseHold,
  ): Promise<Map<string, FanOut>> {
    const result = new Map<string, FanOut>();
    if (batch.length === 0) return result;
    const enabled = await SubscriptionRepository.enabled(tx);
    const runAts = new Map<string, Date>();
    const planned = batch.flatMap((message) => {
      const runAt = new Date(now.getTime() + message.delayMs);
      runAts.set(message.id, runAt);
      return enabled.filter((s) => topicMatches(s.topic, message.topic)).map((subscription) => ({ message, subscription, runAt, leaseUntil: null as Date | null }));
    });
    if (planned.length === 0) return result;
    const leasable = hold ? planned.filter((p) => p.message.stored && p.message.delayMs === 0) : [];
    const granted = leasable.length > 0 && hold ? hold.take(leasable.length) : 0;
    for (const p of leasable.slice(0, granted)) p.leaseUntil = new Date(now.getTime() + (hold as LeaseHold).leaseMs(p.subscription));
    const values = planned.map((p) => newDeliveryValues(p.message.id, p.subscription.id, p.subscription.target.type, p.runAt, now, p.leaseUntil));
    for (const chunk of deliveryInserts(values)) await runSql(tx, INSERT_DELIVERIES, [chunk]);
    const rows = await selectSql<{ id: string | number; message_id: string; subscription_id: string }>(tx, SELECT_NEW_DELIVERIES, [[...runAts.keys()]]);
    const ids = new Map(rows.map((r) => [`${r.message_id}\n${r.subscription_id}`, toNumber(r.id)]));
    for (const p of planned) {
      const id = ids.get(`${p.message.id}\n${p.subscription.id}`);
      // The read-back runs in the inserting transaction under the unique (message, subscription) key.
      if (id === undefined) throw new Error(`delivery of message ${p.message.id} to ${p.subscription.id} missing after its insert`);
      const job = { deliveryId: id, generation: 0, attempt: 0, runAt: p.runAt };
      const entry = result.get(p.message.id) ?? { jobs: [], deliveries: [] };
      entry.deliveries.push({
        id,
        subscriptionId: p.subscription.id,
        targetType: p.subscription.target.type,
        status: 'pending',
        attempts: 0,
        lastError: null,
        lastStatusCode: null,
        nextAttemptAt: p.runAt,
        deliveredAt: null,
        deadAt: null,
      });
      if (p.leaseUntil && p.message.stored) {
        const delivery: DeliveryRow = {
          id,
          messageId: p.message.id,
          subscriptionId: p.subscription.id,
          targetType: p.subscription.target.type,
          status: 'pending',
          attempts: 0,
          generation: 0,
          nextAttemptAt: p.runAt,
          leaseUntil: p.leaseUntil,
          lastError: null,
          lastStatusCode: null,
          createdAt: now,
          updatedAt: now,
          deliveredAt: null,
          deadAt: null,
        };
        (entry.leased ??= []).push({ job, context: { delivery, message: p.message.stored, subscription: p.subscription } });
      } else {
        entry.jobs.push(job);
      }
      result.set(p.message.id, entry);
    }
    // API order: deliveries by id, as a read of them would list them.
    for (const entry of result.values()) entry.deliveries.sort((a, b) => a.id - b.id);
    return result;
  }

  /**
   * Takes the delivery for one attempt if the job still matches the row and nobody else holds
   * it. Of two workers holding the same job, only one gets the lease.
   */
  async claim(job: DeliveryJobRef, leaseMs: number, heldUntil: Date | null = null): Promise<boolean> {
    const now = this.now();
    const result = await runSql(this.db, CLAIM_DELIVERY, [new Date(now.getTime() + leaseMs), now, job.deliveryId, job.generation, job.attempt, now, heldUntil]);
    return result.affectedRows === 1;
  }

  async loadContext(deliveryId: number): Promise<AttemptContext | undefined> {
    return (await readContexts(this.db, [deliveryId])).get(deliveryId);
  }

  /**
   * Reads the job's context and takes the delivery's lease (`claim`), for `leaseMs(context)`.
   * Undefined if the job no longer matches the row or someone else holds it. Concurrent calls
   * are taken together: one transaction locks their rows (id order), reads their contexts and
   * sets their leases, instead of two round trips and one commit each.
   */
  async claimWithContext(job: DeliveryJobRef, leaseMs: (context: AttemptContext) => number): Promise<AttemptContext | undefined> {
    if (!this.claims) return this.claimOne({ job, leaseMs });
    const answer = await this.claims.submit({ job, leaseMs });
    if ('error' in answer) throw answer.error;
    // Waits for the held row on its own, so the batch slot is free for the other claims.
    if (answer.alone) return this.claimOne({ job, leaseMs });
    return answer.context;
  }

  /**
   * Claims a delivery whose lease this process was given (`heldUntil`, by the transaction that
   * created it), reading its context afresh and taking a new lease of `leaseMs(context)`; also if
   * that lease has run out meanwhile, as long as nobody else took the row since. Undefined if the
   * job no longer matches the row or another holder has it.
   */
  async renewClaimWithContext(job: DeliveryJobRef, heldUntil: Date | null, leaseMs: (context: AttemptContext) => number): Promise<AttemptContext | undefined> {
    return this.claimOne({ job, leaseMs }, heldUntil);
  }

  /** `heldUntil`: a lease this process was given, which the claim may replace (see `CLAIM_DELIVERY`). */
  private async claimOne(r: ClaimRequest, heldUntil: Date | null = null): Promise<AttemptContext | undefined> {
    const context = await this.loadContext(r.job.deliveryId);
    // Cheap early exit for duplicates and stale jobs; the conditional claim is what guarantees it.
    if (!context || !jobMatches(context.delivery, r.job)) return undefined;
    return (await this.claim(r.job, r.leaseMs(context), heldUntil)) ? context : undefined;
  }

  /**
   * A batch of claims in one transaction. It locks delivery rows in id order and skips rows
   * another transaction holds (a replay, a roll-up, an operator's session): those claims are made
   * on their own afterwards, so one held row waits alone instead of stalling the whole batch.
   * Deadlocks with writers that lock siblings in another order stay possible; they are retried,
   * and if the batch still fails each claim is made on its own and answers for itself.
   */
  private async claimMany(rs: ClaimRequest[]): Promise<ClaimAnswer[]> {
    const alone = () => Promise.all(rs.map((r) => this.claimOne(r).then((context) => ({ context }), (error: unknown) => ({ error }))));
    if (rs.length === 1) return alone();
    let skipped = new Set<number>();
    let answers: ClaimAnswer[];
    try {
      answers = await withDeadlockRetry(() => this.db.transaction(async (tx) => {
        const ids = [...new Set(rs.map((r) => r.job.deliveryId))].sort((a, b) => a - b);
        const rows = (await selectSql<DeliveryStateRecord & { lease_until: string | null }>(tx, LOCK_DELIVERIES_FOR_CLAIM, [ids])).map((r) => ({
          id: toNumber(r.id),
          status: r.status,
          generation: r.generation,
          attempts: r.attempts,
          leaseUntil: toDateOrNull(r.lease_until),
        }));
        const seen = new Set(rows.map((row) => row.id));
        skipped = new Set(ids.filter((id) => !seen.has(id)));
        const now = this.now();
        const free = new Map(rows.filter((row) => row.leaseUntil === null || row.leaseUntil < now).map((row) => [row.id, row]));
        const wanted = rs.filter((r) => jobMatches(free.get(r.job.deliveryId), r.job)).map((r) => r.job.deliveryId);
        if (wanted.length === 0) return rs.map(() => ({}));
        const contexts = await readContexts(tx, [...new Set(wanted)]);
        const leases = new Map<number, Date>();
        const claimed = rs.map((r): ClaimAnswer => {
          const id = r.job.deliveryId;
          const context = contexts.get(id);
          if (!context || !jobMatches(free.get(id), r.job)) return {};
          // Two jobs for one attempt in a batch: the first takes the lease, as on their own.
          free.delete(id);
          leases.set(id, new Date(now.getTime() + r.leaseMs(context)));
          return { context };
        });
        if (leases.size === 0) return claimed;
        const leased = [...leases.keys()];
        // The CASE's (id, lease) pairs, in the order of `leased`.
        await runSql(tx, setLeases(leased.length), [...[...leases].flat(), now, leased]);
        return claimed;
      }), BATCH_RETRY.attempts, BATCH_RETRY.options);
    } catch (error) {
      this.onBatch({ kind: 'claim', size: rs.length, statements: 0, fallbacks: ['failed'], error });
      return alone();
    }
    if (skipped.size === 0) return answers;
    this.onBatch({ kind: 'claim', size: rs.length, statements: 1, fallbacks: ['skipped-locked'] });
    // A row held elsewhere: its claims are made on their own by their callers, after this batch.
    return rs.map((r, i): ClaimAnswer => (skipped.has(r.job.deliveryId) ? { alone: true } : answers[i]!));
  }

  /**
   * Records an attempt and moves the delivery on, in one transaction with the message's status:
   * delivered; dead after the last attempt (or a permanent failure); otherwise pending with the
   * next attempt scheduled by the backoff (or Retry-After).
   */
  async recordAttempt(job: DeliveryJobRef, context: AttemptContext, result: AttemptResult, startedAt: Date, random?: () => number): Promise<AttemptOutcome> {
    const now = this.now();
    const attemptNo = job.attempt + 1;
    const sub = context.subscription;
    const maxAttempts = sub?.maxAttempts ?? attemptNo;
    const error = result.error?.slice(0, ERROR_MAX) ?? null;
    let outcome: AttemptOutcome;
    let set: Omit<AttemptWrite['set'], 'attempts' | 'lastStatusCode'>;
    if (result.ok) {
      outcome = { kind: 'delivered' };
      set = { status: 'delivered', deliveredAt: now, deadAt: null, nextAttemptAt: null, lastError: error };
    } else if (result.permanent || result.gone || attemptNo >= maxAttempts) {
      const reason = result.gone || result.permanent ? error ?? 'permanent failure' : `gave up after ${attemptNo} attempts: ${error ?? 'failed'}`;
      outcome = { kind: 'dead', reason };
      set = { status: 'dead', deliveredAt: null, deadAt: now, nextAttemptAt: null, lastError: reason.slice(0, ERROR_MAX) };
    } else {
      const delay = nextAttemptDelayMs(sub?.backoff ?? { initialMs: 1000, maxMs: 1000 }, attemptNo, result.retryAfterMs, random);
      const runAt = new Date(now.getTime() + delay);
      outcome = { kind: 'retry', job: { deliveryId: job.deliveryId, generation: job.generation, attempt: attemptNo, runAt } };
      set = { status: 'pending', deliveredAt: null, deadAt: null, nextAttemptAt: runAt, lastError: error };
    }
    const write: AttemptWrite = {
      job,
      messageId: context.message.id,
      outcome,
      now,
      set: { ...set, attempts: attemptNo, lastStatusCode: result.statusCode ?? null },
      attempt: {
        deliveryId: job.deliveryId,
        generation: job.generation,
        attempt: attemptNo,
        startedAt,
        durationMs: Math.max(0, Math.round(result.durationMs)),
        ok: result.ok,
        statusCode: result.statusCode ?? null,
        error,
        responseExcerpt: result.responseExcerpt?.slice(0, 1024) ?? null,
      },
    };
    if (!this.attempts) return this.writeAttempt(write);
    // Left out of its batch (a row another transaction held, or the batch failed): on its own.
    return (await this.attempts.submit(write)) ?? this.writeAttempt(write);
  }

  /** One attempt in its own transaction (a batch of one, or a batch that failed). */
  private writeAttempt(w: AttemptWrite): Promise<AttemptOutcome> {
    return withDeadlockRetry(() => this.db.transaction(async (tx) => {
      await lockMessages(tx, [w.messageId]);
      const updated = await runSql(tx, RECORD_ATTEMPT, [...attemptResultValues(w.set), w.now, w.job.deliveryId, w.job.generation, w.job.attempt]);
      // Someone replayed or finished it meanwhile: this attempt's result no longer applies.
      if (updated.affectedRows !== 1) return { kind: 'stale' } as const;
      await runSql(tx, INSERT_ATTEMPTS, [[attemptValues(w.attempt)]]);
      if (w.outcome.kind !== 'retry') await rollUpMessageStatus(tx, [w.messageId], w.now);
      return w.outcome;
    }));
  }

  /**
   * Group commit of attempt results: one transaction locks the batch's messages (id order, as
   * everywhere) and then its deliveries, keeps the writes whose job still matches its row
   * (the others are stale, as on their own), and records them with one UPDATE, one multi-row
   * INSERT and one roll-up. Rows are locked with SKIP LOCKED: a write whose message or delivery
   * another transaction holds answers undefined and is written on its own (it waits there, alone,
   * instead of holding up the batch). If the transaction fails, every write answers undefined.
   *
   * Lock order: message rows, then delivery rows, each in id order — the order of a confirm
   * (messages, then the deliveries it inserts) and of every single write, so batches and singles
   * queue rather than cross. A deadlock that still happens (gap locks) is retried.
   */
  private async writeAttempts(ws: AttemptWrite[]): Promise<AttemptAnswer[]> {
    const only = ws.length === 1 ? ws[0] : undefined;
    // A batch of one is written in the batch's slot, so that writes arriving meanwhile group.
    if (only) return [await this.writeAttempt(only)];
    const fallbacks = new Set<WriteBatchFallback>();
    let statements = 0;
    let answers: AttemptAnswer[];
    try {
      answers = await withDeadlockRetry(() => this.db.transaction(async (tx) => {
        fallbacks.clear();
        statements = 0;
        const messageIds = [...new Set(ws.map((w) => w.messageId))].sort();
        const lockedMessages = await selectSql<{ id: string }>(tx, LOCK_MESSAGE_IDS_SKIP_LOCKED, [messageIds]);
        const heldMessages = new Set(lockedMessages.map((r) => r.id));
        const ids = [...new Set(ws.filter((w) => heldMessages.has(w.messageId)).map((w) => w.job.deliveryId))].sort((a, b) => a - b);
        const rows = ids.length === 0 ? [] : (await selectSql<DeliveryStateRecord>(tx, LOCK_DELIVERIES_SKIP_LOCKED, [ids])).map((r) => ({ ...r, id: toNumber(r.id) }));
        const held = new Set(rows.map((r) => r.id));
        const current = new Map(rows.map((r) => [r.id, r]));
        const live: AttemptWrite[] = [];
        const result = ws.map((w): AttemptAnswer => {
          // Not locked: held by another transaction (or gone) — the single path waits or finds out.
          if (!heldMessages.has(w.messageId) || !held.has(w.job.deliveryId)) {
            fallbacks.add('skipped-locked');
            return undefined;
          }
          const row = current.get(w.job.deliveryId);
          if (!row || row.status !== 'pending' || row.generation !== w.job.generation || row.attempts !== w.job.attempt) return { kind: 'stale' };
          // A second write for the same attempt finds the row moved on by the first.
          current.delete(w.job.deliveryId);
          live.push(w);
          return w.outcome;
        });
        if (live.length === 0) return result;
        const cases = attemptResultCases(live.map((w) => ({ id: w.job.deliveryId, set: w.set })));
        const updated = await runSql(tx, recordAttempts(live.length), [...cases, live[0]?.now ?? this.now(), live.map((w) => w.job.deliveryId)]);
        statements++;
        // The rows are locked and were checked: anything else means the batch is wrong, undo it.
        if (updated.affectedRows !== live.length) throw new Error(`attempt batch changed ${updated.affectedRows} of ${live.length} deliveries`);
        await runSql(tx, INSERT_ATTEMPTS, [live.map((w) => attemptValues(w.attempt))]);
        const settled = live.filter((w) => w.outcome.kind !== 'retry');
        if (settled.length > 0) await rollUpMessageStatus(tx, [...new Set(settled.map((w) => w.messageId))], settled[0]?.now ?? this.now());
        return result;
      }), BATCH_RETRY.attempts, BATCH_RETRY.options);
    } catch (error) {
      // Nothing of the batch committed (or, if only the answer to COMMIT was lost, each write
      // finds its row moved on and answers stale): every write goes its own way.
      this.onBatch({ kind: 'attempt', size: ws.length, statements: 0, fallbacks: ['failed'], error });
      return ws.map(() => undefined);
    }
    this.onBatch({ kind: 'attempt', size: ws.length, statements, fallbacks: [...fallbacks] });
    return answers;
  }

  /** Marks a delivery dead without an attempt (its subscription was deleted or disabled). */
  async markDead(job: DeliveryJobRef, messageId: string, reason: string): Promise<boolean> {
    const now = this.now();
    return withDeadlockRetry(() => this.db.transaction(async (tx) => {
      await lockMessages(tx, [messageId]);
      const [result] = await tx
        .update(deliveries)
        .set({ status: 'dead', deadAt: now, nextAttemptAt: null, leaseUntil: null, lastError: reason.slice(0, ERROR_MAX), updatedAt: now })
        .where(and(eq(deliveries.id, job.deliveryId), eq(deliveries.generation, job.generation), eq(deliveries.attempts, job.attempt), eq(deliveries.status, 'pending')));
      if (result.affectedRows === 1) await rollUpMessageStatus(tx, [messageId], now);
      return result.affectedRows === 1;
    }));
  }

  /**
   * Pending deliveries due for at least `graceMs` and not leased: the reconciler re-enqueues
   * them. Their jobs have deterministic ids, so one that is still queued is not duplicated.
   */
  async due(limit: number, graceMs: number): Promise<DeliveryJobRef[]> {
    const now = this.now();
    const rows = await this.db
      .select({ id: deliveries.id, generation: deliveries.generation, attempts: deliveries.attempts, nextAttemptAt: deliveries.nextAttemptAt })
      .from(deliveries)
      .where(
        and(
          eq(deliveries.status, 'pending'),
          lte(deliveries.nextAttemptAt, new Date(now.getTime() - graceMs)),
          or(isNull(deliveries.leaseUntil), lt(deliveries.leaseUntil, now)),
        ),
      )
      .orderBy(asc(deliveries.nextAttemptAt))
      .limit(limit);
    return rows.map((r) => ({ deliveryId: r.id, generation: r.generation, attempt: r.attempts, runAt: r.nextAttemptAt ?? now }));
  }

  /**
   * Requeues a message's dead deliveries (with `all`, its delivered ones too) as a new generation.
   * Pending ones are left alone: they are already on their way, and one may be sending now.
   */
  async requeueMessage(messageId: string, all: boolean): Promise<DeliveryJobRef[]> {
    const statuses: DeliveryStatus[] = all ? ['dead', 'delivered'] : ['dead'];
    return this.requeue(and(eq(deliveries.messageId, messageId), inArray(deliveries.status, statuses)));
  }

  /** Requeues a subscription's dead deliveries that died within [since, until). */
  async requeueSubscription(subscriptionId: string, since?: Date, until?: Date): Promise<DeliveryJobRef[]> {
    return this.requeue(
      and(
        eq(deliveries.subscriptionId, subscriptionId),
        eq(deliveries.status, 'dead'),
        since ? gte(deliveries.deadAt, since) : undefined,
        until ? lt(deliveries.deadAt, until) : undefined,
      ),
    );
  }

  private async requeue(where: ReturnType<typeof and>): Promise<DeliveryJobRef[]> {
    const now = this.now();
    return withDeadlockRetry(() => this.db.transaction(async (tx) => {
      const candidates = await tx.selectDistinct({ messageId: deliveries.messageId }).from(deliveries).where(where);
      if (candidates.length === 0) return [];
      await lockMessages(tx, candidates.map((c) => c.messageId));
      const rows = await tx.select({ id: deliveries.id, messageId: deliveries.messageId }).from(deliveries).where(where).for('update');
      if (rows.length === 0) return [];
      const ids = rows.map((r) => r.id);
      await tx
        .update(deliveries)
        .set({
          status: 'pending',
          generation: sql`${deliveries.generation} + 1`,
          attempts: 0,
          nextAttemptAt: now,
          leaseUntil: null,
          deadAt: null,
          deliveredAt: null,
          updatedAt: now,
        })
        .where(inArray(deliveries.id, ids));
      await rollUpMessageStatus(tx, [...new Set(rows.map((r) => r.messageId))], now);
      const after = await tx.select({ id: deliveries.id, generation: deliveries.generation }).from(deliveries).where(inArray(deliveries.id, ids));
      return after.map((r) => ({ deliveryId: r.id, generation: r.generation, attempt: 0, runAt: now }));
    }));
  }

  async forMessage(messageId: string): Promise<DeliverySummary[]> {
    const rows = await this.db.select().from(deliveries).where(eq(deliveries.messageId, messageId)).orderBy(asc(deliveries.id));
    return rows.map(toSummary);
  }

  /** Delivery summaries of several messages in one query, by message id. */
  async forMessages(messageIds: readonly string[]): Promise<Map<string, DeliverySummary[]>> {
    const byMessage = new Map<string, DeliverySummary[]>();
    if (messageIds.length === 0) return byMessage;
    const rows = await this.db.select().from(deliveries).where(inArray(deliveries.messageId, [...messageIds])).orderBy(asc(deliveries.id));
    for (const row of rows) {
      const list = byMessage.get(row.messageId) ?? [];
      list.push(toSummary(row));
      byMessage.set(row.messageId, list);
    }
    return byMessage;
  }

  /** Each delivery of a message with its attempts, newest attempt first. */
  async forMessageWithAttempts(messageId: string): Promise<Array<DeliverySummary & { attemptsLog: AttemptRecord[] }>> {
    const summaries = await this.forMessage(messageId);
    if (summaries.length === 0) return [];
    const attempts = await this.db
      .select()
      .from(deliveryAttempts)
      .where(inArray(deliveryAttempts.deliveryId, summaries.map((s) => s.id)))
      .orderBy(desc(deliveryAttempts.id));
    return summaries.map((s) => ({ ...s, attemptsLog: attempts.filter((a) => a.deliveryId === s.id).map(toAttempt) }));
  }

  /**
   * How many rows have `status`; with `cap`, counting stops there (the answer is at most `cap`),
   * so a metrics scrape reads a bounded index range however large the backlog grows.
   */
  async countByStatus(status: DeliveryStatus, cap?: number): Promise<number> {
    const matching = this.db.select({ one: sql`1` }).from(deliveries).where(eq(deliveries.status, status));
    const [row] = await this.db.select({ n: sql<string>`COUNT(*)` }).from((cap === undefined ? matching : matching.limit(cap)).as('matching'));
    return Number(row?.n ?? 0);
  }
}

/** Whether a pending row is the one the job names (same generation and attempt). */
function jobMatches(row: Pick<DeliveryRow, 'status' | 'generation' | 'attempts'> | undefined, job: DeliveryJobRef): boolean {
  return row !== undefined && row.status === 'pending' && row.generation === job.generation && row.attempts === job.attempt;
}

/** The attempt contexts of several deliveries in one query, by delivery id. */
async function readContexts(db: SqlExecutor, ids: number[]): Promise<Map<number, AttemptContext>> {
  const contexts = new Map<number, AttemptContext>();
  if (ids.length === 0) return contexts;
  const rows = await selectSql<ContextRecord>(db, SELECT_CONTEXTS, [ids]);
  for (const row of rows) {
    const delivery = toDeliveryRow(row);
    // A LEFT JOIN's missing subscription: all its columns are NULL, its primary key too.
    const sub = row.s_id === null ? null : toSubscriptionRow(row);
    contexts.set(delivery.id, {
      delivery,
      message: toMessage(toMessageRow(row)),
      subscription: sub ? withSecrets(sub) : undefined,
    });
  }
  return contexts;
}

/**
 * Every transaction that changes a message's deliveries locks the message row first, in id
 * order: one lock order for all of them, so concurrent attempts on one message's deliveries
 * queue behind each other instead of deadlocking (delivery row, then message row, crossed).
 */
async function lockMessages(tx: Tx, messageIds: string[]): Promise<void> {
  const sorted = [...new Set(messageIds)].sort();
  if (sorted.length === 0) return;
  await runSql(tx, LOCK_MESSAGE_IDS, [sorted]);
}

/**
 * InnoDB may still pick a transaction as a deadlock victim (gap locks, lock escalation on
 * secondary indexes); its work was rolled back whole, so running it again is safe. A lock-wait
 * timeout (`innodb_lock_wait_timeout`, 50 s by default) is retried too unless
 * `lockWaitTimeouts` is false: a group commit passes false, since its writes have their own
 * path to fall back on and four more waits of 50 s would hold every write of the batch.
 */
export async function withDeadlockRetry<T>(work: () => Promise<T>, attempts = 4, options: { lockWaitTimeouts?: boolean } = {}): Promise<T> {
  const retried = options.lockWaitTimeouts === false ? ['ER_LOCK_DEADLOCK'] : ['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT'];
  for (let i = 1; ; i++) {
    try {
      return await work();
    } catch (error) {
      if (i >= attempts || !hasErrorCode(error, retried)) throw error;
      await new Promise((r) => setTimeout(r, 5 * i + Math.random() * 20));
    }
  }
}

/** Group commits: a deadlock is retried twice; a lock-wait timeout sends the writes their own way. */
export const BATCH_RETRY = { attempts: 3, options: { lockWaitTimeouts: false } } as const;

/**
 * Sets committed messages' status from their deliveries (see `committedStatus` in the domain):
 * failed while any is dead, delivered when none is pending or dead, confirmed otherwise.
 *
 * The subqueries of an UPDATE are locking reads, so they are held to the message's own
 * deliveries (the message_id index): left to the optimizer, `status = 'pending'` may scan the
 * status index and share-lock every pending delivery, deadlocking concurrent attempt results.
 */
export async function rollUpMessageStatus(tx: Tx, messageIds: string[], now: Date): Promise<void> {
  if (messageIds.length === 0) return;
  await runSql(tx, ROLL_UP_MESSAGE_STATUS, [now, messageIds]);
}

function toSummary(row: DeliveryRow): DeliverySummary {
  return {
    id: row.id,
    subscriptionId: row.subscriptionId,
    targetType: row.targetType as TargetType,
    status: row.status as DeliveryStatus,
    attempts: row.attempts,
    lastError: row.lastError,
    lastStatusCode: row.lastStatusCode,
    nextAttemptAt: row.nextAttemptAt,
    deliveredAt: row.deliveredAt,
    deadAt: row.deadAt,
  };
}

function toAttempt(row: DeliveryAttemptRow): AttemptRecord {
  return {
    generation: row.generation,
    attempt: row.attempt,
    startedAt: row.startedAt,
    durationMs: row.durationMs,
    ok: row.ok,
    statusCode: row.statusCode,
    error: row.error,
    responseExcerpt: row.responseExcerpt,
  };
}
