import { randomUUID } from 'node:crypto';
import type { HeraldClient } from '../client';
import { HeraldApiError } from '../errors';
import { ER_DUP_ENTRY, sqlErrno, type TransactionRunner } from '../transaction.runner';
import type { HeraldMessage, PrepareMessageInput } from '../types';
import { BARRIER_TABLE, insertCommitRow, safeId } from './barrier.store';

/** The message of a transaction: everything `prepare` takes except the check URL, set once. */
export type TransactionMessage = Omit<PrepareMessageInput, 'checkUrl' | 'confirm'>;

/**
 * Points where a test or a demo can make the producer "crash": a hook that throws stops the
 * transaction there exactly as a dead process would — the local transaction is rolled back if it
 * was still open (as the database does when the connection drops) and neither confirm nor cancel
 * is sent. Leave them out in production.
 */
export interface FailureHooks {
  afterPrepare?: (messageId: string) => void | Promise<void>;
  beforeCommit?: (messageId: string) => void | Promise<void>;
  afterCommit?: (messageId: string) => void | Promise<void>;
}

/** Options of {@link HeraldBarrier}. */
export interface BarrierOptions<Tx> {
  client: HeraldClient;
  /** Your database: `mysql2Transactions(pool)` or `drizzleTransactions(db)`. */
  transactions: TransactionRunner<Tx>;
  /** The URL where this service mounts the SDK's check handler. */
  checkUrl: string;
  /** Prefix of generated message ids (default none). */
  idPrefix?: string;
  table?: string;
  hooks?: FailureHooks;
}

/** How a transaction ended when it did not throw. */
export interface TransactionResult<T> {
  messageId: string;
  /** What the callback returned. */
  value: T;
  /**
   * True when Herald acknowledged the confirm. False when it could not be reached after the
   * retries: the local transaction is committed all the same, and Herald's check-back finds the
   * barrier row and commits the message.
   */
  confirmed: boolean;
  message?: HeraldMessage;
}

/** The check-back answered rollback while the local transaction was still open; it was rolled back. */
export class BarrierLostError extends Error {
  override readonly name = 'BarrierLostError';
}

/**
 * The commit itself failed (e.g. the connection dropped during COMMIT), so whether the local
 * transaction committed is unknown. Nothing more is sent: Herald's check-back reads the barrier
 * and settles the message to match what the database did.
 */
export class CommitOutcomeUnknownError extends Error {
  override readonly name = 'CommitOutcomeUnknownError';
}

/**
 * Transactional messages without a hand-written check-back handler. `transaction()` prepares the
 * message with a generated id, runs your callback inside your own database transaction together
 * with an insert into the barrier table, commits, then confirms; if the callback throws, it rolls
 * back and cancels. The SDK's check handler answers from the barrier table alone.
 */
export class HeraldBarrier<Tx> {
  constructor(private readonly options: BarrierOptions<Tx>) {}

  /**
   * Prepares `message`, runs `work` in your transaction with the barrier row, commits, confirms.
   * Throws what `work` threw (after rollback and cancel), `BarrierLostError` if the check-back
   * rolled the message back first, or `CommitOutcomeUnknownError` if COMMIT itself failed.
   */
  async transaction<T>(message: TransactionMessage, work: (tx: Tx, messageId: string) => Promise<T>): Promise<TransactionResult<T>> {
    const { client, transactions, checkUrl, hooks = {} } = this.options;
    const table = this.options.table ?? BARRIER_TABLE;
    const messageId = safeId(message.id ?? `${this.options.idPrefix ?? ''}${randomUUID()}`);
    // If prepare fails nothing has happened locally; if it landed but its answer was lost, the
    // message has no barrier row, so its check-back rolls it back.
    await client.prepare({ ...message, id: messageId, checkUrl });

    let crashed = false;
    const hook = async (fn: ((id: string) => void | Promise<void>) | undefined) => {
      try {
        await fn?.(messageId);
      } catch (err) {
        crashed = true;
        throw err;
      }
    };

    await hook(hooks.afterPrepare);
    let committing = false;
    let value: T;
    try {
      value = await transactions.run(
        async (tx, execute) => {
          const result = await work(tx, messageId);
          await hook(hooks.beforeCommit);
          // Last, so a check-back that came first (and wrote `rollback`) makes this insert fail.
          try {
            await insertCommitRow(execute, messageId, table);
          } catch (err) {
            if (sqlErrno(err) === ER_DUP_ENTRY) throw new BarrierLostError(`message ${messageId} was rolled back by a check-back before the local transaction committed`, { cause: err });
            throw err;
          }
          return result;
        },
        () => (committing = true),
      );
    } catch (err) {
      if (crashed) throw err;
      if (committing) throw new CommitOutcomeUnknownError(`commit of the transaction for message ${messageId} failed; Herald's check-back will settle it`, { cause: err });
      // Best effort: if the cancel is lost too, the check-back finds no barrier row and rolls back.
      await client.cancel(messageId).catch(() => undefined);
      throw err;
    }

    await hook(hooks.afterCommit);
    try {
      return { messageId, value, confirmed: true, message: await client.confirm(messageId) };
    } catch (err) {
      // 409: the message was cancelled although the local transaction committed (a person
      // cancelled a held message): the caller must know.
      if (err instanceof HeraldApiError && err.status === 409) throw err;
      return { messageId, value, confirmed: false };
    }
  }
}
