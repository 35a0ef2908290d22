import { and, eq } from 'drizzle-orm';
import type { ResultSetHeader } from 'mysql2';
import { attemptVerdict, type AttemptResult, type DeliveryJobRef } from '@herald/domain';
import type { HeraldDb } from './connection';
import {
  attemptResultCases,
  attemptResultValues,
  attemptValues,
  INSERT_ATTEMPT_IF_RECORDED,
  INSERT_ATTEMPTS,
  LOCK_DELIVERIES_SKIP_LOCKED,
  LOCK_MESSAGE_SEQS,
  LOCK_MESSAGE_SEQS_SKIP_LOCKED,
  RECORD_ATTEMPT,
  recordAttempts,
  ROLL_UP_IF_RECORDED,
  ROLL_UP_MESSAGE_STATUS,
  type AttemptResultSet,
  type DeliveryStateRecord,
} from './delivery.statements';
import { foldedTransaction, type Statement } from './folded-transaction';
import { lockOrderKeys, wakeNext, type OrderKeyRef } from './key-order';
import { ERROR_MAX, type AttemptContext } from './rows';
import { deliveries, type deliveryAttempts } from './schema/deliveries';
import { FAIL_UNLESS_ROW_COUNT, runSql, toNumber } from './sql.runner';
import { BATCH_RETRY, lockMessages, rollUpMessageStatus, uniqueSeqs, withDeadlockRetry } from './transactions';
import { STALLED_BATCH_MS, WriteBatcher, type OnWriteBatch, type WriteBatchFallback } from './write.batcher';

export type AttemptOutcome =
  /** `woken`: the next delivery of its key, due now that this one is delivered (ordered subscriptions). */
  | { kind: 'delivered'; woken?: DeliveryJobRef }
  | { kind: 'retry'; job: DeliveryJobRef }
  | { kind: 'dead'; reason: string }
  /** The delivery was replayed or finished meanwhile: this result no longer applies. */
  | { kind: 'stale' };

/** One attempt's result, ready to write: what the row becomes, and the attempt record. */
interface AttemptWrite {
  job: DeliveryJobRef;
  messageSeq: bigint;
  /** A delivery in a key's sequence whose delivery hands the key to the next one. */
  handsOver?: OrderKeyRef;
  outcome: AttemptOutcome;
  now: Date;
  set: AttemptResultSet;
  attempt: typeof deliveryAttempts.$inferInsert;
}

/** A batch's answer for one write: undefined sends the write its own way (`writeOne`). */
type AttemptAnswer = AttemptOutcome | undefined;

export interface AttemptRepositoryOptions {
  /** Attempt results written at once once a batch has stalled (default 4; 0: each on its own). */
  maxBatchesInFlight?: number;
  stalledBatchMs?: number;
  maxQueuedWrites?: number;
  onBatch?: OnWriteBatch;
  now?: () => Date;
}

/**
 * Attempt results: each attempt is recorded and its delivery moved on (delivered, retried or
 * dead, decided by `attemptVerdict`) in one transaction with its message's status.
 */
export class AttemptRepository {
  private readonly batches?: WriteBatcher<AttemptWrite, AttemptAnswer>;
  private readonly onBatch: OnWriteBatch;
  private readonly now: () => Date;

  constructor(
    private readonly db: HeraldDb,
    options: AttemptRepositoryOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.onBatch = options.onBatch ?? (() => undefined);
    const maxInFlight = options.maxBatchesInFlight ?? 4;
    if (maxInFlight > 0) {
      this.batches = new WriteBatcher((ws) => this.writeMany(ws), { maxInFlight, maxBatch: 200, maxQueued: options.maxQueuedWrites, stalledAfterMs: options.stalledBatchMs ?? STALLED_BATCH_MS });
    }
  }

  async record(job: DeliveryJobRef, context: AttemptContext, result: AttemptResult, startedAt: Date, random?: () => number): Promise<AttemptOutcome> {
    const now = this.now();
    const attemptNo = job.attempt + 1;
    const verdict = attemptVerdict(result, attemptNo, context.subscription, now, random);
    const error = result.error?.slice(0, ERROR_MAX) ?? null;
    const outcome: AttemptOutcome =
      verdict.kind === 'retry'
        ? { kind: 'retry', job: { deliveryId: job.deliveryId, generation: job.generation, attempt: attemptNo, runAt: verdict.runAt } }
        : verdict.kind === 'dead'
          ? { kind: 'dead', reason: verdict.reason.slice(0, ERROR_MAX) }
          : verdict;
    const { orderKey } = context.delivery;
    const write: AttemptWrite = {
      job,
      messageSeq: context.delivery.messageSeq,
      handsOver: orderKey !== null && verdict.kind === 'delivered' ? { subscriptionId: context.delivery.subscriptionId, orderKey } : undefined,
      outcome,
      now,
      set: {
        status: verdict.kind === 'retry' ? 'pending' : verdict.kind,
        attempts: attemptNo,
        lastStatusCode: result.statusCode ?? null,
        lastError: outcome.kind === 'dead' ? outcome.reason : error,
        nextAttemptAt: verdict.kind === 'retry' ? verdict.runAt : null,
        deliveredAt: verdict.kind === 'delivered' ? now : null,
        deadAt: verdict.kind === 'dead' ? now : null,
      },
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
    // A handover locks its key and wakes the next delivery: a transaction of its own.
    if (!this.batches || write.handsOver) return this.writeOne(write);
    // Left out of its batch (a row another transaction held, or the batch failed): on its own.
    return (await this.batches.submit(write)) ?? this.writeOne(write);
  }

  /**
   * Marks a delivery dead without an attempt (its subscription was deleted or disabled). With
   * `release` (the subscription is gone for good) a delivery in a key's sequence is also marked
   * skipped, so the key moves on: its next delivery is returned as `woken`.
   */
  async markDead(job: DeliveryJobRef, delivery: { messageSeq: bigint; subscriptionId: string; orderKey: string | null }, reason: string, release = false): Promise<{ marked: boolean; woken?: DeliveryJobRef }> {
    const now = this.now();
    const key = release && delivery.orderKey !== null ? { subscriptionId: delivery.subscriptionId, orderKey: delivery.orderKey } : undefined;
    return withDeadlockRetry(() =>
      this.db.transaction(async (tx) => {
        await lockMessages(tx, [delivery.messageSeq]);
        if (key) await lockOrderKeys(tx, [key], now);
        const [result] = await tx
          .update(deliveries)
          .set({ status: 'dead', deadAt: now, nextAttemptAt: null, leaseUntil: null, lastError: reason.slice(0, ERROR_MAX), updatedAt: now, ...(key && { skippedAt: now }) })
          .where(and(eq(deliveries.id, job.deliveryId), eq(deliveries.generation, job.generation), eq(deliveries.attempts, job.attempt), eq(deliveries.status, 'pending')));
        if (result.affectedRows !== 1) return { marked: false };
        await rollUpMessageStatus(tx, [delivery.messageSeq], now);
        return { marked: true, woken: key && (await wakeNext(tx, key, job.deliveryId, now)) };
      }),
    );
  }

  /**
   * One attempt in its own transaction (a batch of one, or a write its batch left out), in one
   * round trip: the attempt row and the roll-up are written only if the delivery's UPDATE matched
   * (`ROW_COUNT()`), so a result that no longer applies changes nothing.
   */
  private writeOne(w: AttemptWrite): Promise<AttemptOutcome> {
    if (w.handsOver) return this.writeHandover(w, w.handsOver);
    return withDeadlockRetry(() =>
      foldedTransaction(this.db, async (tx): Promise<AttemptOutcome> => {
        const [, updated] = await tx.send(
          [
            [LOCK_MESSAGE_SEQS, [[w.messageSeq]]],
            [RECORD_ATTEMPT, [...attemptResultValues(w.set), w.now, w.job.deliveryId, w.job.generation, w.job.attempt]],
            [INSERT_ATTEMPT_IF_RECORDED, [attemptValues(w.attempt)]],
            ...(w.outcome.kind === 'retry' ? [] : [[ROLL_UP_IF_RECORDED, [w.now, [w.messageSeq]]] satisfies Statement]),
          ],
          { commit: true },
        );
        // Someone replayed or finished it meanwhile: this attempt's result no longer applies.
        return (updated as ResultSetHeader).affectedRows === 1 ? w.outcome : { kind: 'stale' };
      }),
    );
  }

  /** A delivered head of a key's sequence: its record also locks the key and wakes the next delivery. */
  private writeHandover(w: AttemptWrite, key: OrderKeyRef): Promise<AttemptOutcome> {
    return withDeadlockRetry(() =>
      this.db.transaction(async (tx): Promise<AttemptOutcome> => {
        await lockMessages(tx, [w.messageSeq]);
        await lockOrderKeys(tx, [key], w.now);
        const updated = await runSql(tx, RECORD_ATTEMPT, [...attemptResultValues(w.set), w.now, w.job.deliveryId, w.job.generation, w.job.attempt]);
        if (updated.affectedRows !== 1) return { kind: 'stale' } as const;
        await runSql(tx, INSERT_ATTEMPTS, [[attemptValues(w.attempt)]]);
        await rollUpMessageStatus(tx, [w.messageSeq], w.now);
        return w.outcome.kind === 'delivered' ? { kind: 'delivered', woken: await wakeNext(tx, key, w.job.deliveryId, w.now) } : w.outcome;
      }),
    );
  }

  /**
   * A batch of results in one transaction: locks its messages, then its deliveries (id order,
   * SKIP LOCKED: a held row's write answers undefined and goes alone), keeps the writes whose job
   * still matches, and records them with one UPDATE, one INSERT and one roll-up.
   */
  private async writeMany(ws: AttemptWrite[]): Promise<AttemptAnswer[]> {
    const only = ws.length === 1 ? ws[0] : undefined;
    // A batch of one is written in the batch's slot, so that writes arriving meanwhile group.
    if (only) return [await this.writeOne(only)];
    const fallbacks = new Set<WriteBatchFallback>();
    let statements = 0;
    let answers: AttemptAnswer[];
    try {
      answers = await withDeadlockRetry(
        () =>
          foldedTransaction(this.db, async (tx) => {
            fallbacks.clear();
            statements = 0;
            // Messages first, then only the deliveries of messages this batch holds: a delivery
            // locked without its message would make two batches' roll-ups wait on each other.
            const [lockedMessages] = await tx.send([[LOCK_MESSAGE_SEQS_SKIP_LOCKED, [uniqueSeqs(ws.map((w) => w.messageSeq))]]]);
            const heldMessages = new Set((lockedMessages as Array<{ seq: string }>).map((r) => BigInt(r.seq)));
            const ids = [...new Set(ws.filter((w) => heldMessages.has(w.messageSeq)).map((w) => w.job.deliveryId))].sort((a, b) => a - b);
            const [lockedDeliveries] = ids.length === 0 ? [[]] : await tx.send([[LOCK_DELIVERIES_SKIP_LOCKED, [ids]]]);
            const rows = (lockedDeliveries as DeliveryStateRecord[]).map((r) => ({ ...r, id: toNumber(r.id) }));
            const held = new Set(rows.map((r) => r.id));
            const current = new Map(rows.map((r) => [r.id, r]));
            const live: AttemptWrite[] = [];
            const result = ws.map((w): AttemptAnswer => {
              // Not locked: held by another transaction (or gone) — the single path waits or finds out.
              if (!heldMessages.has(w.messageSeq) || !held.has(w.job.deliveryId)) {
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
            const now = live[0]?.now ?? this.now();
            const cases = attemptResultCases(live.map((w) => ({ id: w.job.deliveryId, set: w.set })));
            const settled = live.filter((w) => w.outcome.kind !== 'retry');
            // The rows are locked and were checked, so the UPDATE changes each; the guard makes sure before the COMMIT.
            await tx.send(
              [
                [recordAttempts(live.length), [...cases, now, live.map((w) => w.job.deliveryId)]],
                [FAIL_UNLESS_ROW_COUNT, [live.length]],
                [INSERT_ATTEMPTS, [live.map((w) => attemptValues(w.attempt))]],
                ...(settled.length === 0 ? [] : [[ROLL_UP_MESSAGE_STATUS, [now, uniqueSeqs(settled.map((w) => w.messageSeq))]] satisfies Statement]),
              ],
              { commit: true },
            );
            statements++;
            return result;
          }),
        BATCH_RETRY.attempts,
        BATCH_RETRY.options,
      );
    } catch (error) {
      // Nothing of the batch committed (or its COMMIT answer was lost, and each write finds its row moved on).
      this.onBatch({ kind: 'attempt', size: ws.length, statements: 0, fallbacks: ['failed'], error });
      return ws.map(() => undefined);
    }
    this.onBatch({ kind: 'attempt', size: ws.length, statements, fallbacks: [...fallbacks] });
    return answers;
  }
}
