import { describe, expect, it } from 'vitest';
import { checkInvariants, checkKeyOrder, type InvariantInput, type StoredMessageRow } from './invariant.checker';
import type { MessageKind, PlannedMessage } from './load.generator';

// The checker is what makes the chaos run mean anything: each test breaks one promise in an
// otherwise consistent run and expects the checker to name it.

const subs = [
  { id: 'sub_hook', name: 'hook', topic: 'order.#' },
  { id: 'sub_queue', name: 'queue', topic: '*.paid' },
  { id: 'sub_audit', name: 'audit', topic: 'audit.#' },
];

const plan = (id: string, kind: MessageKind, topic: string, truth: 'commit' | 'rollback', acknowledged = true, tenant = 'default'): PlannedMessage => ({
  tenant,
  id,
  deliveryId: tenant === 'default' ? id : `${tenant}/${id}`,
  kind,
  topic,
  truth,
  acknowledged,
  violations: [],
});
const byDeliveryId = (...plans: PlannedMessage[]) => new Map(plans.map((p) => [p.deliveryId, p]));
const stored = (id: string, status: string, tenant = 'default') => ({ tenant, id, status });
/** Sets (or adds) the stored status of one tenant's message. */
function setStatus(input: { messages: StoredMessageRow[] }, id: string, status: string, tenant = 'default') {
  input.messages = [...input.messages.filter((m) => !(m.id === id && m.tenant === tenant)), stored(id, status, tenant)];
}

/** A consistent run: one of each outcome, every receipt where it belongs. */
function consistentRun() {
  const plans = byDeliveryId(
    plan('m-paid', 'confirm', 'order.paid', 'commit'),
    plan('m-cancel', 'cancel', 'order.paid', 'rollback'),
    plan('m-noise', 'direct', 'noise.tick', 'commit'),
    plan('m-audit', 'check-commit', 'audit.login', 'commit'),
    plan('m-lost-prepare', 'confirm', 'order.paid', 'rollback', false),
  );
  const input = {
    plans,
    messages: [stored('m-paid', 'delivered'), stored('m-cancel', 'cancelled'), stored('m-noise', 'confirmed'), stored('m-audit', 'failed')] as StoredMessageRow[],
    deliveries: [
      { tenant: 'default', messageId: 'm-paid', subscriptionId: 'sub_hook', status: 'delivered' },
      { tenant: 'default', messageId: 'm-paid', subscriptionId: 'sub_queue', status: 'delivered' },
      { tenant: 'default', messageId: 'm-audit', subscriptionId: 'sub_audit', status: 'dead' },
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
    expect(checkInvariants(input).lost).toEqual([{ tenant: 'default', id: 'm-paid', subscription: 'queue', reason: 'delivered in MySQL, never received' }]);
  });

  it('reports an acknowledged message missing from MySQL as lost', () => {
    const input = consistentRun();
    input.messages = input.messages.filter((m) => m.id !== 'm-noise');
    expect(checkInvariants(input).lost.map((f) => f.id)).toEqual(['m-noise']);
  });

  it('reports a message the producer committed but Herald cancelled as lost', () => {
    const input = consistentRun();
    setStatus(input, 'm-audit', 'cancelled');
    input.deliveries.pop();
    expect(checkInvariants(input).lost.map((f) => f.reason)).toContain('the producer committed but Herald cancelled it');
  });

  it('reports a dead delivery the API does not show as lost', () => {
    const input = consistentRun();
    input.deadVisible.clear();
    expect(checkInvariants(input).lost).toEqual([{ tenant: 'default', id: 'm-audit', subscription: 'audit', reason: 'dead but not visible through the API' }]);
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
    expect(checkInvariants(input).phantom).toEqual([{ tenant: 'default', id: 'm-paid', subscription: 'hook', reason: '1 request(s) whose signature did not verify' }]);
  });

  it('reports a rolled-back message Herald confirmed as phantom', () => {
    const input = consistentRun();
    setStatus(input, 'm-lost-prepare', 'confirmed');
    expect(checkInvariants(input).phantom.map((f) => f.id)).toEqual(['m-lost-prepare']);
  });

  it('reports impossible states: deliveries on a cancelled message, a wrong roll-up, a contradicting API answer', () => {
    const input = consistentRun();
    input.deliveries.push({ tenant: 'default', messageId: 'm-cancel', subscriptionId: 'sub_hook', status: 'pending' });
    setStatus(input, 'm-paid', 'failed');
    input.plans.get('m-noise')!.violations.push('confirm answered 409');
    expect(checkInvariants(input).impossible.map((f) => f.id).sort()).toEqual(['m-cancel', 'm-noise', 'm-paid']);
  });

  it('reports a message still undecided after convergence', () => {
    const input = consistentRun();
    setStatus(input, 'm-noise', 'prepared');
    expect(checkInvariants(input).lost.map((f) => f.reason)).toEqual(['still prepared after the run converged']);
  });

  describe('with two tenants', () => {
    /** The consistent run plus tenant `pay`'s own `m-paid`, which it rolled back. */
    function twoTenants() {
      const input = consistentRun();
      const theirs = plan('m-paid', 'cancel', 'order.paid', 'rollback', true, 'pay');
      input.plans.set(theirs.deliveryId, theirs);
      input.messages.push(stored('m-paid', 'cancelled', 'pay'));
      return input;
    }

    it('keeps the same id of two tenants apart and totals each tenant', () => {
      const report = checkInvariants(twoTenants());
      expect({ lost: report.lost, phantom: report.phantom, impossible: report.impossible }).toEqual({ lost: [], phantom: [], impossible: [] });
      expect(report.sharedIds).toBe(1);
      expect(report.byTenant.default).toMatchObject({ messages: 5, committed: 3, rolledBack: 2, expectedDeliveries: 3, delivered: 2 });
      expect(report.byTenant.pay).toMatchObject({ messages: 1, committed: 0, rolledBack: 1, expectedDeliveries: 0, delivered: 0 });
    });

    it("reports a delivery of one tenant's rolled-back message as phantom even when another tenant committed the same id", () => {
      const input = twoTenants();
      input.receipts.get('sub_hook')!.set('pay/m-paid', 1);
      const report = checkInvariants(input);
      expect(report.phantom).toEqual([{ tenant: 'pay', id: 'm-paid', subscription: 'hook', reason: 'received a message that is cancelled (producer: rollback)' }]);
      expect(report.byTenant).toMatchObject({ pay: { phantom: 1 }, default: { phantom: 0 } });
    });

    it("does not count one tenant's receipt as another's: a committed message only the other tenant received is lost", () => {
      const input = twoTenants();
      const theirs = plan('m-shared', 'direct', 'order.paid', 'commit', true, 'pay');
      input.plans.set(theirs.deliveryId, theirs);
      input.messages.push(stored('m-shared', 'delivered', 'pay'));
      input.deliveries.push({ tenant: 'pay', messageId: 'm-shared', subscriptionId: 'sub_hook', status: 'delivered' }, { tenant: 'pay', messageId: 'm-shared', subscriptionId: 'sub_queue', status: 'delivered' });
      // Received under the bare id (tenant default's form), as if the tenant had been dropped.
      input.receipts.get('sub_hook')!.set('m-shared', 1);
      input.receipts.get('sub_queue')!.set('pay/m-shared', 1);
      const report = checkInvariants(input);
      expect(report.lost).toEqual([{ tenant: 'pay', id: 'm-shared', subscription: 'hook', reason: 'delivered in MySQL, never received' }]);
      expect(report.phantom).toEqual([{ tenant: 'default', id: 'm-shared', subscription: 'hook', reason: 'received m-shared, which no producer sent' }]);
    });

    it('reports a delivery whose herald-tenant disagrees with its id, and a check call the tenant refused, as phantom', () => {
      const input: InvariantInput = {
        ...twoTenants(),
        wrongTenant: new Map([['sub_queue', new Map([['pay/m-paid', 1]])]]),
        refusedChecks: [{ tenant: 'pay', id: 'm-paid', reason: 'signature does not verify with the tenant’s check secret' }],
      };
      const report = checkInvariants(input);
      expect(report.phantom.map((f) => [f.tenant, f.reason])).toEqual([
        ['pay', '1 request(s) whose herald-tenant is not the tenant their id names'],
        ['pay', 'check call refused by the tenant’s endpoint: signature does not verify with the tenant’s check secret'],
      ]);
      expect(report.byTenant.pay!.phantom).toBe(2);
    });
  });
});

describe('checkKeyOrder', () => {
  const seq = new Map([['default/k1', ['a', 'b', 'c']]]);
  it('passes one at a time in commit order, retries and duplicates included', () => {
    expect(checkKeyOrder(seq, [{ id: 'a', at: 1 }, { id: 'a', at: 2, okAt: 3 }, { id: 'b', at: 4, okAt: 5 }, { id: 'a', at: 6, okAt: 7 }, { id: 'c', at: 8, okAt: 9 }])).toEqual([]);
  });
  it('finds a message sent before the one before it was delivered, and one sent out of order', () => {
    expect(checkKeyOrder(seq, [{ id: 'a', at: 1 }, { id: 'b', at: 2, okAt: 3 }, { id: 'a', at: 4, okAt: 5 }, { id: 'c', at: 6, okAt: 7 }]).map((f) => f.reason)).toEqual(['key default/k1: b arrived before a was delivered']);
    expect(checkKeyOrder(seq, [{ id: 'b', at: 1, okAt: 2 }, { id: 'a', at: 3, okAt: 4 }, { id: 'c', at: 5, okAt: 6 }]).map((f) => f.reason)).toEqual(['key default/k1: b arrived before a, which committed first']);
  });
});
