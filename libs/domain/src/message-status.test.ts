import { describe, expect, it } from 'vitest';
import { decide, MESSAGE_STATUSES, targetStatus } from './message-status';

describe('decide', () => {
  it('lets an undecided message be confirmed or cancelled', () => {
    for (const status of ['prepared', 'unresolved'] as const) {
      expect(decide(status, 'confirm')).toBe('apply');
      expect(decide(status, 'cancel')).toBe('apply');
    }
  });

  it('never cancels a committed message (guards against a phantom rollback after delivery)', () => {
    for (const status of ['confirmed', 'delivered', 'failed'] as const) {
      expect(decide(status, 'cancel')).toBe('conflict');
      expect(decide(status, 'confirm')).toBe('already');
    }
  });

  it('never confirms a cancelled message (guards against delivering a rolled-back transaction)', () => {
    expect(decide('cancelled', 'confirm')).toBe('conflict');
    expect(decide('cancelled', 'cancel')).toBe('already');
  });

  it('gives every status an answer for both decisions', () => {
    for (const status of MESSAGE_STATUSES) {
      expect(['apply', 'already', 'conflict']).toContain(decide(status, 'confirm'));
      expect(['apply', 'already', 'conflict']).toContain(decide(status, 'cancel'));
    }
    expect(targetStatus('confirm')).toBe('confirmed');
    expect(targetStatus('cancel')).toBe('cancelled');
  });
});
