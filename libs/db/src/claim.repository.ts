import type { DeliveryJobRef } from '@herald/domain';
import type { HeraldDb } from './connection';
import { CLAIM_DELIVERY, DELIVERY_ROW, LOCK_DELIVERIES_FOR_CLAIM, SELECT_CONTEXTS, setLeases, type ContextRecord, type DeliveryStateRecord } from './delivery.statements';
import { MESSAGE_ROW } from './message.statements';
import { toMessage, type AttemptContext } from './rows';
import type { DeliveryRow } from './schema/deliveries';
import { runSql, selectSql, toDateOrNull, toNumber, type SqlExecutor } from './sql.runner';
import { withSecrets } from './subscription.repository';
import { SUBSCRIPTION_ROW } from './subscription.statements';
import { BATCH_RETRY, withDeadlockRetry } from './transactions';
import { STALLED_BATCH_MS, WriteBatcher, type OnWriteBatch } from './write.batcher';

/** A claim of one job; the lease length depends on the target, known once the context is read. */
interface ClaimRequest {
  job: DeliveryJobRef;
  leaseMs: (context: AttemptContext) => number;
}

/** `alone`: the row was held elsewhere, so the caller claims it on its own, outside the batch. */
type ClaimAnswer = { context?: AttemptContext; alone?: true } | { error: unknown };

export interface ClaimRepositoryOptions {
  /** Claims that arrive while this many claim batches run wait and are taken together (default 2; 0: each alone). */
  maxClaimBatchesInFlight?: number;
  stalledBatchMs?: number;
  onBatch?: OnWriteBatch;
  now?: () => Date;
}

/**
 * Delivery leases: a worker claims a delivery (a conditional UPDATE on its generation, attempt
 * and lease) before sending it, so of two holders of one job exactly one sends.
 */
export class ClaimRepository {
  private readonly claims?: WriteBatcher<ClaimRequest, ClaimAnswer>;
  private readonly now: () => Date;
  private readonly onBatch: OnWriteBatch;

  constructor(
    private readonly db: HeraldDb,
    options: ClaimRepositoryOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.onBatch = options.onBatch ?? (() => undefined);
    const maxInFlight = options.maxClaimBatchesInFlight ?? 2;
    if (maxInFlight > 0) this.claims = new WriteBatcher((rs) => this.claimMany(rs), { maxInFlight, maxBatch: 200, stalledAfterMs: options.stalledBatchMs ?? STALLED_BATCH_MS });
  }

  /**
   * Takes the delivery for one attempt if the job still matches the row and nobody else holds it.
   * `heldUntil`: a lease this process was given, which the claim may replace.
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
   * Reads the job's context and claims it for `leaseMs(context)`; undefined if the job no longer
   * matches or someone else holds it. Concurrent calls share one transaction.
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
   * Claims afresh a delivery whose lease this process was given (`heldUntil`), also if that lease
   * ran out meanwhile, as long as nobody else took the row since.
   */
  async renewClaimWithContext(job: DeliveryJobRef, heldUntil: Date | null, leaseMs: (context: AttemptContext) => number): Promise<AttemptContext | undefined> {
    return this.claimOne({ job, leaseMs }, heldUntil);
  }

  private async claimOne(r: ClaimRequest, heldUntil: Date | null = null): Promise<AttemptContext | undefined> {
    const context = await this.loadContext(r.job.deliveryId);
    // Cheap early exit for duplicates and stale jobs; the conditional claim is what guarantees it.
    if (!context || !jobMatches(context.delivery, r.job)) return undefined;
    return (await this.claim(r.job, r.leaseMs(context), heldUntil)) ? context : undefined;
  }

  /**
   * A batch of claims in one transaction: locks the rows in id order, skipping rows another
   * transaction holds (those are claimed alone afterwards). If the batch fails, each claim is
   * made alone and answers for itself.
   */
  private async claimMany(rs: ClaimRequest[]): Promise<ClaimAnswer[]> {
    const alone = () => Promise.all(rs.map((r) => this.claimOne(r).then((context) => ({ context }), (error: unknown) => ({ error }))));
    if (rs.length === 1) return alone();
    let skipped = new Set<number>();
    let answers: ClaimAnswer[];
    try {
      answers = await withDeadlockRetry(() =>
        this.db.transaction(async (tx) => {
          const ids = [...new Set(rs.map((r) => r.job.deliveryId))].sort((a, b) => a - b);
          const rows = (await selectSql<DeliveryStateRecord & { lease_until: string | null; next_attempt_at: string | null }>(tx, LOCK_DELIVERIES_FOR_CLAIM, [ids])).map((r) => ({
            id: toNumber(r.id),
            status: r.status,
            generation: r.generation,
            attempts: r.attempts,
            leaseUntil: toDateOrNull(r.lease_until),
            waiting: r.next_attempt_at === null,
          }));
          const seen = new Set(rows.map((row) => row.id));
          skipped = new Set(ids.filter((id) => !seen.has(id)));
          const now = this.now();
          // A delivery waiting behind its key is not claimed: the head's completion makes it due.
          const free = new Map(rows.filter((row) => !row.waiting && (row.leaseUntil === null || row.leaseUntil < now)).map((row) => [row.id, row]));
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
        }),
        BATCH_RETRY.attempts,
        BATCH_RETRY.options,
      );
    } catch (error) {
      this.onBatch({ kind: 'claim', size: rs.length, statements: 0, fallbacks: ['failed'], error });
      return alone();
    }
    if (skipped.size === 0) return answers;
    this.onBatch({ kind: 'claim', size: rs.length, statements: 1, fallbacks: ['skipped-locked'] });
    return rs.map((r, i): ClaimAnswer => (skipped.has(r.job.deliveryId) ? { alone: true } : answers[i]!));
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
  for (const row of await selectSql<ContextRecord>(db, SELECT_CONTEXTS, [ids])) {
    const delivery = DELIVERY_ROW.decode(row);
    // A LEFT JOIN's missing subscription: all its columns are NULL, its primary key too.
    contexts.set(delivery.id, {
      delivery,
      message: toMessage(MESSAGE_ROW.decode(row)),
      subscription: row.s_id === null ? undefined : withSecrets(SUBSCRIPTION_ROW.decode(row)),
    });
  }
  return contexts;
}
