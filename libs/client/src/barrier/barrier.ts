import { randomUUID } from 'node:crypto';
import type { HeraldClient } from '../client';
import { HeraldApiError } from '../errors';
import { ER_DUP_ENTRY, sqlErrno, type TransactionRunner } from '../transaction.runner';
import type { HeraldMessage, PrepareMessageInput } from '../types';
import { BARRIER_TABLE, insertCommitRow, safeId } from './barrier.store';

/**
 * The message of a transaction: everything `prepare` takes except the check URL (set once), and
 * except the id. The barrier always generates a fresh random id: a reused id could meet a barrier
 * row or a Herald message left by an earlier transaction (one that committed before a crash or a
 * {@link CommitOutcomeUnknownError}), and the cancel sent after a failed callback would then cancel
 * a message whose transaction committed — a lost message.
 */
export type TransactionMessage = Omit<PrepareMessageInput, 'checkUrl' | 'confirm' | 'id'>;

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
 * The local transaction committed, but Herald refused the confirm with 409: the message had been
 * cancelled meanwhile (e.g. by an operator). The database change stands and the message will not
 * be delivered; the caller has to reconcile (compensate, or publish anew).
 */
export class ConfirmRefusedError<T = unknown> extends Error {
  override readonly name = 'ConfirmRefusedError';
  /** Always true: the local transaction, barrier row included, is committed. */
  readonly committed = true;

  constructor(
    readonly messageId: string,
    /** What the callback returned. */
    readonly value: T,
    options: { cause: unknown },
  ) {
    super(`the local transaction for message ${messageId} committed, but Herald refused the confirm (the message was cancelled)`, options);
  }
}

/**
 * Prepare answered with a message that is not a fresh `prepared` one, so this transaction does not
 * own it. Nothing ran locally and nothing is sent.
 */
export class UnexpectedPrepareError extends Error {
  override readonly name = 'UnexpectedPrepareError';
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
   * rolled the message back first, `CommitOutcomeUnknownError` if COMMIT itself failed,
   * `ConfirmRefusedError` if the local commit succeeded but the message had been cancelled, or
   * `UnexpectedPrepareError` if prepare did not answer a fresh `prepared` message.
   */
  async transaction<T>(message: TransactionMessage, work: (tx: Tx, messageId: string) => Promise<T>): Promise<TransactionResult<T>> {
    const { client, transactions, checkUrl, hooks = {} } = this.options;
    const table = this.options.table ?? BARRIER_TABLE;
    // A JavaScript caller can still pass an id the type forbids; refuse it rather than reuse it.
    if ((message as { id?: unknown }).id !== undefined) throw new TypeError('transaction() generates the message id; remove `id` from the message');
    const messageId = safeId(`${this.options.idPrefix ?? ''}${randomUUID()}`);
    // If prepare fails nothing has happened locally; if it landed but its answer was lost, the
    // message has no barrier row, so its check-back rolls it back.
    const prepared = await client.prepare({ ...message, id: messageId, checkUrl });
    // Defence in depth: only a message still waiting for this transaction may be settled by it.
    // Anything else (already confirmed or cancelled) must not be confirmed or cancelled from here.
    if (prepared.id !== messageId || prepared.status !== 'prepared') {
      throw new UnexpectedPrepareError(`prepare of ${messageId} answered a ${prepared.status} message; the transaction did not run`);
    }

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
      // cancelled a held message): the caller must know, with what committed.
      if (err instanceof HeraldApiError && err.status === 409) throw new ConfirmRefusedError(messageId, value, { cause: err });
      return { messageId, value, confirmed: false };
    }
  }
}
