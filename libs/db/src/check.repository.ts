import { and, asc, eq, inArray, lte } from 'drizzle-orm';
import { afterUnknown, nextCheckDelayMs, type CheckAnswer, type CheckJobRef, type DeliveryJobRef, type MessageStatus } from '@herald/domain';
import type { HeraldDb } from './connection';
import { fanOutOne } from './fan-out';
import { decidedColumns, ERROR_MAX, toCheckAttemptRecord, toMessage, type CheckAttemptRecord } from './rows';
import { checkAttempts, messages } from './schema/messages';
import { withDeadlockRetry } from './transactions';

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

export interface CheckRepositoryOptions {
  /** The longest wait between two checks (default 10 min). */
  checkIntervalCapMs?: number;
  /** Called once per committed state change, with the message's tenant, for metrics. */
  onTransition?: (from: MessageStatus, to: MessageStatus, tenant: string) => void;
  now?: () => Date;
}

/** Check-back in MySQL: claiming due check rounds, and recording each call with what its answer decided. */
export class CheckRepository {
  private readonly now: () => Date;

  constructor(
    private readonly db: HeraldDb,
    private readonly options: CheckRepositoryOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Claims up to `limit` prepared messages whose check is due, one round each. SKIP LOCKED lets
   * sweepers run side by side; pushing `next_check_at` on by `leaseMs` keeps a round from being
   * claimed again while it runs, and brings it back if its job is lost.
   */
  async claimDue(limit: number, leaseMs: number): Promise<CheckJobRef[]> {
    const now = this.now();
    return withDeadlockRetry(() =>
      this.db.transaction(async (tx) => {
        const due = await tx
          .select({ seq: messages.seq, id: messages.id, checks: messages.checks })
          .from(messages)
          .where(and(eq(messages.status, 'prepared'), lte(messages.nextCheckAt, now)))
          .orderBy(asc(messages.nextCheckAt))
          .limit(limit)
          .for('update', { skipLocked: true });
        if (due.length === 0) return [];
        await tx.update(messages).set({ nextCheckAt: new Date(now.getTime() + leaseMs) }).where(inArray(messages.seq, due.map((d) => d.seq)));
        return due.map((d) => ({ seq: d.seq, messageId: d.id, check: d.checks + 1 }));
      }),
    );
  }

  /**
   * Records check `ref.check` and acts on its answer in one transaction, with the API's
   * conditional transitions: commit confirms (and fans out), rollback cancels, unknown asks again
   * later or, once the checks are spent, applies `onChecksExhausted`. A message decided meanwhile
   * is left as it is.
   */
  async record(ref: CheckJobRef, call: CheckCall): Promise<CheckOutcome> {
    const now = this.now();
    let transition: [MessageStatus, MessageStatus, string] | undefined;
    const outcome = await withDeadlockRetry(() =>
      this.db.transaction(async (tx): Promise<CheckOutcome> => {
        transition = undefined;
        const [row] = await tx.select().from(messages).where(eq(messages.seq, ref.seq)).for('update');
        // Purged meanwhile: a call recorded now would outlive its message.
        if (!row) return { kind: 'stale' };
        await tx.insert(checkAttempts).values({
          messageSeq: ref.seq,
          messageId: ref.messageId,
          checkNo: ref.check,
          startedAt: call.startedAt,
          durationMs: Math.max(0, Math.round(call.durationMs)),
          answer: call.answer,
          statusCode: call.statusCode,
          error: call.error?.slice(0, ERROR_MAX) ?? null,
        });
        if (row.status !== 'prepared' || row.checks !== ref.check - 1) return { kind: 'stale' };
        const message = toMessage(row);
        const next = call.answer === 'commit' ? 'confirm' : call.answer === 'rollback' ? 'cancel' : afterUnknown(message, ref.check);
        const checked = { checks: ref.check };
        const settle = async (to: MessageStatus) => {
          await tx.update(messages).set({ ...checked, ...decidedColumns(to, now) }).where(eq(messages.seq, ref.seq));
          transition = ['prepared', to, row.tenant];
        };
        switch (next) {
          case 'confirm':
            await settle('confirmed');
            return { kind: 'confirmed', jobs: (await fanOutOne(tx, { ...message, seq: row.seq }, now)).jobs };
          case 'cancel':
            await settle('cancelled');
            return { kind: 'cancelled' };
          case 'hold':
            await settle('unresolved');
            return { kind: 'held' };
          default: {
            const nextCheckAt = new Date(now.getTime() + nextCheckDelayMs(message, ref.check, this.options.checkIntervalCapMs));
            await tx.update(messages).set({ ...checked, nextCheckAt, updatedAt: now }).where(eq(messages.seq, ref.seq));
            return { kind: 'ask-again', nextCheckAt };
          }
        }
      }),
    );
    if (transition) this.options.onTransition?.(...transition);
    return outcome;
  }

  /** The check calls made for a message, oldest first. */
  async attempts(messageSeq: bigint): Promise<CheckAttemptRecord[]> {
    const rows = await this.db.select().from(checkAttempts).where(eq(checkAttempts.messageSeq, messageSeq)).orderBy(asc(checkAttempts.id));
    return rows.map(toCheckAttemptRecord);
  }
}
