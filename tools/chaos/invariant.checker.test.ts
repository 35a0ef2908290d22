import { describe, expect, it } from 'vitest';
import { checkInvariants, type InvariantInput } from './invariant.checker';
import type { MessageKind, PlannedMessage } from './load.generator';

// The checker is what makes the chaos run mean anything: each test breaks one promise in an
// otherwise consistent run and expects the checker to name it.

const subs = [
  { id: 'sub_hook', name: 'hook', topic: 'order.#' },
  { id: 'sub_queue', name: 'queue', topic: '*.paid' },
  { id: 'sub_audit', name: 'audit', topic: 'audit.#' },
];

const plan = (id: string, kind: MessageKind, topic: string, truth: 'commit' | 'rollback', acknowledged = true): PlannedMessage => ({ id, kind, topic, truth, acknowledged, violations: [] });

/** A consistent run: one of each outcome, every receipt where it belongs. */
function consistentRun() {
  const plans = new Map<string, PlannedMessage>([
    ['m-paid', plan('m-paid', 'confirm', 'order.paid', 'commit')],
    ['m-cancel', plan('m-cancel', 'cancel', 'order.paid', 'rollback')],
    ['m-noise', plan('m-noise', 'direct', 'noise.tick', 'commit')],
    ['m-audit', plan('m-audit', 'check-commit', 'audit.login', 'commit')],
    ['m-lost-prepare', plan('m-lost-prepare', 'confirm', 'order.paid', 'rollback', false)],
  ]);
  const input = {
    plans,
    messages: new Map([
      ['m-paid', { id: 'm-paid', status: 'delivered' }],
      ['m-cancel', { id: 'm-cancel', status: 'cancelled' }],
      ['m-noise', { id: 'm-noise', status: 'confirmed' }],
      ['m-audit', { id: 'm-audit', status: 'failed' }],
    ]),
    deliveries: [
      { messageId: 'm-paid', subscriptionId: 'sub_hook', status: 'delivered' },
      { messageId: 'm-paid', subscriptionId: 'sub_queue', status: 'delivered' },
      { messageId: 'm-audit', subscriptionId: 'sub_audit', status: 'dead' },
    ],
    subscriptions: subs,
    receipts: new Map([
      ['sub_hook', new Map([['m-paid', 2]])],
      ['sub_queue', new Map([['m-paid', 1]])],
      ['sub_audit', new Map<string, number>()],
    ]),
    deadVisible: new Set(['m-audit|sub_audit']),
  } satisfies InvariantInput;
  return input;
}

describe('the chaos invariant checker', () => {
  it('passes a consistent run and counts deliveries, dead ones and duplicates', () => {
    const report = checkInvariants(consistentRun());
    expect({ lost: report.lost, phantom: report.phantom, impossible: report.impossible }).toEqual({ lost: [], phantom: [], impossible: [] });
    expect(report).toMatchObject({ messages: 5, committed: 3, rolledBack: 2, expectedDeliveries: 3, delivered: 2, deadVisible: 1, duplicates: 1 });
  });

  it('reports a committed message a subscription never received as lost', () => {
    const input = consistentRun();
    input.receipts.set('sub_queue', new Map());
    expect(checkInvariants(input).lost).toEqual([{ id: 'm-paid', subscription: 'queue', reason: 'delivered in MySQL, never received' }]);
  });

  it('reports an acknowledged message missing from MySQL as lost', () => {
    const input = consistentRun();
    input.messages.delete('m-noise');
    expect(checkInvariants(input).lost.map((f) => f.id)).toEqual(['m-noise']);
  });

  it('reports a message the producer committed but Herald cancelled as lost', () => {
    const input = consistentRun();
    input.messages.set('m-audit', { id: 'm-audit', status: 'cancelled' });
    input.deliveries.pop();
    expect(checkInvariants(input).lost.map((f) => f.reason)).toContain('the producer committed but Herald cancelled it');
  });

  it('reports a dead delivery the API does not show as lost', () => {
    const input = consistentRun();
    input.deadVisible.clear();
    expect(checkInvariants(input).lost).toEqual([{ id: 'm-audit', subscription: 'audit', reason: 'dead but not visible through the API' }]);
  });

  it('reports a delivery of a cancelled message as phantom', () => {
    const input = consistentRun();
    input.receipts.get('sub_hook')!.set('m-cancel', 1);
    expect(checkInvariants(input).phantom.map((f) => f.id)).toEqual(['m-cancel']);
  });

  it('reports a message Herald never had, or a topic the subscription does not match, as phantom', () => {
    const input = consistentRun();
    input.receipts.get('sub_hook')!.set('never-sent', 1);
    input.receipts.get('sub_audit')!.set('m-noise', 1);
    expect(checkInvariants(input).phantom.map((f) => f.id).sort()).toEqual(['m-noise', 'never-sent']);
  });

  it('reports a request whose webhook signature does not verify as phantom', () => {
    const input: InvariantInput = { ...consistentRun(), forged: new Map([['sub_hook', new Map([['m-paid', 1]])]]) };
    expect(checkInvariants(input).phantom).toEqual([{ id: 'm-paid', subscription: 'hook', reason: '1 request(s) whose signature did not verify' }]);
  });

  it('reports a rolled-back message Herald confirmed as phantom', () => {
    const input = consistentRun();
    input.messages.set('m-lost-prepare', { id: 'm-lost-prepare', status: 'confirmed' });
    expect(checkInvariants(input).phantom.map((f) => f.id)).toEqual(['m-lost-prepare']);
  });

  it('reports impossible states: deliveries on a cancelled message, a wrong roll-up, a contradicting API answer', () => {
    const input = consistentRun();
    input.deliveries.push({ messageId: 'm-cancel', subscriptionId: 'sub_hook', status: 'pending' });
    input.messages.set('m-paid', { id: 'm-paid', status: 'failed' });
    input.plans.get('m-noise')!.violations.push('confirm answered 409');
    expect(checkInvariants(input).impossible.map((f) => f.id).sort()).toEqual(['m-cancel', 'm-noise', 'm-paid']);
  });

  it('reports a message still undecided after convergence', () => {
    const input = consistentRun();
    input.messages.set('m-noise', { id: 'm-noise', status: 'prepared' });
    expect(checkInvariants(input).lost.map((f) => f.reason)).toEqual(['still prepared after the run converged']);
  });
});
