/**
 * Message states (DESIGN.md section 3).
 *
 * prepared → confirmed → delivered · prepared → cancelled · prepared → unresolved ·
 * confirmed → failed (a delivery is dead; replay moves it back to confirmed).
 */
export const MESSAGE_STATUSES = ['prepared', 'confirmed', 'delivered', 'failed', 'cancelled', 'unresolved'] as const;

export type MessageStatus = (typeof MESSAGE_STATUSES)[number];

/** States from which a producer (or an admin, or a check-back answer) may still decide. */
export const UNDECIDED_STATUSES = ['prepared', 'unresolved'] as const satisfies readonly MessageStatus[];

/** States that mean "the producer committed": the message is, or will be, delivered. */
export const COMMITTED_STATUSES = ['confirmed', 'delivered', 'failed'] as const satisfies readonly MessageStatus[];

export type Decision = 'confirm' | 'cancel';

/**
 * What asking for `decision` means for a message currently in `status`.
 *
 * - `apply`: the message is undecided; the caller performs the conditional update.
 * - `already`: the same decision was taken before; idempotent success, nothing changes.
 * - `conflict`: the opposite decision was taken; a confirmed message is never cancelled and a
 *   cancelled one is never delivered.
 */
export type DecisionOutcome = 'apply' | 'already' | 'conflict';

export function decide(status: MessageStatus, decision: Decision): DecisionOutcome {
  if (isUndecided(status)) return 'apply';
  const committed = isCommitted(status);
  if (decision === 'confirm') return committed ? 'already' : 'conflict';
  return status === 'cancelled' ? 'already' : 'conflict';
}

/** The status a decision moves an undecided message to. */
export function targetStatus(decision: Decision): MessageStatus {
  return decision === 'confirm' ? 'confirmed' : 'cancelled';
}

export function isUndecided(status: MessageStatus): boolean {
  return (UNDECIDED_STATUSES as readonly MessageStatus[]).includes(status);
}

export function isCommitted(status: MessageStatus): boolean {
  return (COMMITTED_STATUSES as readonly MessageStatus[]).includes(status);
}
