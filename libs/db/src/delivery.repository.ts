import { and, asc, desc, eq, gte, inArray, isNotNull, isNull, lt, lte, or, sql } from 'drizzle-orm';
import type { DeliveryJobRef, DeliveryStatus } from '@herald/domain';
import type { HeraldDb } from './connection';
import { toAttemptRecord, toDeliverySummary, type AttemptRecord, type DeliverySummary } from './rows';
import { deliveries, deliveryAttempts } from './schema/deliveries';
import { lockMessages, rollUpMessageStatus, withDeadlockRetry } from './transactions';
import { writeAudit, type AuditEntry } from './audit.repository';

/**
 * Deliveries as the API and the reconciler see them: reads, counts, overdue rows, and replay
 * (a dead or delivered delivery sent again as a new generation).
 */
export class DeliveryRepository {
  constructor(
    private readonly db: HeraldDb,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** A message's deliveries; `messageSeq` names the message whatever its tenant. */
  async forMessage(messageSeq: bigint): Promise<DeliverySummary[]> {
    const rows = await this.db.select().from(deliveries).where(eq(deliveries.messageSeq, messageSeq)).orderBy(asc(deliveries.id));
    return rows.map(toDeliverySummary);
  }

  /** Delivery summaries of several messages in one query, by message seq. */
  async forMessages(messageSeqs: readonly bigint[]): Promise<Map<bigint, DeliverySummary[]>> {
    const byMessage = new Map<bigint, DeliverySummary[]>();
    if (messageSeqs.length === 0) return byMessage;
    const rows = await this.db.select().from(deliveries).where(inArray(deliveries.messageSeq, [...messageSeqs])).orderBy(asc(deliveries.id));
    for (const row of rows) {
      const list = byMessage.get(row.messageSeq) ?? [];
      list.push(toDeliverySummary(row));
      byMessage.set(row.messageSeq, list);
    }
    return byMessage;
  }

  /** Each delivery of a message with its attempts, newest attempt first. */
  async forMessageWithAttempts(messageSeq: bigint): Promise<Array<DeliverySummary & { attemptsLog: AttemptRecord[] }>> {
    const summaries = await this.forMessage(messageSeq);
    if (summaries.length === 0) return [];
    const attempts = await this.db
      .select()
      .from(deliveryAttempts)
      .where(inArray(deliveryAttempts.deliveryId, summaries.map((s) => s.id)))
      .orderBy(desc(deliveryAttempts.id));
    return summaries.map((s) => ({ ...s, attemptsLog: attempts.filter((a) => a.deliveryId === s.id).map(toAttemptRecord) }));
  }

  /** How many rows have `status`, counting no further than `cap` (a scrape reads a bounded range). */
  async countByStatus(status: DeliveryStatus, cap?: number): Promise<number> {
    const matching = this.db.select({ one: sql`1` }).from(deliveries).where(eq(deliveries.status, status));
    const [row] = await this.db.select({ n: sql<string>`COUNT(*)` }).from((cap === undefined ? matching : matching.limit(cap)).as('matching'));
    return Number(row?.n ?? 0);
  }

  /**
   * Pending deliveries due for at least `graceMs` and not leased, for the reconciler. Their jobs
   * have deterministic ids, so one still queued is not duplicated.
   */
  async overdue(limit: number, graceMs: number): Promise<DeliveryJobRef[]> {
    const now = this.now();
    const rows = await this.db
      .select({ id: deliveries.id, generation: deliveries.generation, attempts: deliveries.attempts, nextAttemptAt: deliveries.nextAttemptAt })
      .from(deliveries)
      .where(and(eq(deliveries.status, 'pending'), lte(deliveries.nextAttemptAt, new Date(now.getTime() - graceMs)), or(isNull(deliveries.leaseUntil), lt(deliveries.leaseUntil, now))))
      .orderBy(asc(deliveries.nextAttemptAt))
      .limit(limit);
    return rows.map((r) => ({ deliveryId: r.id, generation: r.generation, attempt: r.attempts, runAt: r.nextAttemptAt ?? now }));
  }

  /**
   * Replays a message's dead deliveries (with `all`, its delivered ones too) as a new generation.
   * Pending ones are left alone: they are on their way, and one may be sending now.
   */
  async replayMessage(messageSeq: bigint, all: boolean, audit?: AuditEntry): Promise<DeliveryJobRef[]> {
    const statuses: DeliveryStatus[] = all ? ['dead', 'delivered'] : ['dead'];
    return this.replay(and(eq(deliveries.messageSeq, messageSeq), inArray(deliveries.status, statuses)), audit);
  }

  /** Replays a subscription's dead deliveries that died within [since, until). */
  async replaySubscription(subscriptionId: string, since?: Date, until?: Date, audit?: AuditEntry): Promise<DeliveryJobRef[]> {
    return this.replay(deadOfSubscription(subscriptionId, since, until), audit);
  }

  /** How many deliveries `replaySubscription` would requeue now, through the subscription/status/dead-at index. */
  async countDeadOfSubscription(subscriptionId: string, since?: Date, until?: Date): Promise<number> {
    const [row] = await this.db.select({ n: sql<string>`COUNT(*)` }).from(deliveries).where(deadOfSubscription(subscriptionId, since, until));
    return Number(row?.n ?? 0);
  }

  /** Requeues what `where` matches; an operator's replay (`audit`) is recorded in the same transaction. */
  private async replay(where: ReturnType<typeof and>, audit?: AuditEntry): Promise<DeliveryJobRef[]> {
    const now = this.now();
    return withDeadlockRetry(() =>
      this.db.transaction(async (tx) => {
        const noneAudited = async () => {
          if (audit) await writeAudit(tx, audit, 'requeued 0', now);
          return [];
        };
        const candidates = await tx.selectDistinct({ messageSeq: deliveries.messageSeq }).from(deliveries).where(where);
        if (candidates.length === 0) return noneAudited();
        await lockMessages(tx, candidates.map((c) => c.messageSeq));
        const rows = await tx.select({ id: deliveries.id, messageSeq: deliveries.messageSeq }).from(deliveries).where(where).for('update');
        if (rows.length === 0) return noneAudited();
        const ids = rows.map((r) => r.id);
        // A delivered or skipped delivery of an ordered key is sent again on its own, outside its
        // key's sequence: later deliveries of the key do not wait for it (a dead head stays in).
        await tx
          .update(deliveries)
          .set({ orderKey: null })
          .where(and(inArray(deliveries.id, ids), isNotNull(deliveries.orderKey), or(eq(deliveries.status, 'delivered'), isNotNull(deliveries.skippedAt))));
        await tx
          .update(deliveries)
          .set({ status: 'pending', generation: sql`${deliveries.generation} + 1`, attempts: 0, nextAttemptAt: now, leaseUntil: null, deadAt: null, deliveredAt: null, skippedAt: null, updatedAt: now })
          .where(inArray(deliveries.id, ids));
        await rollUpMessageStatus(tx, rows.map((r) => r.messageSeq), now);
        const after = await tx.select({ id: deliveries.id, generation: deliveries.generation }).from(deliveries).where(inArray(deliveries.id, ids));
        if (audit) await writeAudit(tx, audit, `requeued ${ids.length}`, now);
        return after.map((r) => ({ deliveryId: r.id, generation: r.generation, attempt: 0, runAt: now }));
      }),
    );
  }
}

function deadOfSubscription(subscriptionId: string, since?: Date, until?: Date) {
  return and(eq(deliveries.subscriptionId, subscriptionId), eq(deliveries.status, 'dead'), since ? gte(deliveries.deadAt, since) : undefined, until ? lt(deliveries.deadAt, until) : undefined);
}
