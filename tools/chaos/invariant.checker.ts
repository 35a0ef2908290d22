import { topicMatches } from '@herald/domain';
import type { PlannedMessage } from './load.generator';

export interface StoredMessageRow {
  id: string;
  status: string;
}

export interface DeliveryRow {
  messageId: string;
  subscriptionId: string;
  status: string;
}

export interface SubscriptionInfo {
  id: string;
  name: string;
  topic: string;
}

export interface InvariantInput {
  plans: ReadonlyMap<string, PlannedMessage>;
  messages: ReadonlyMap<string, StoredMessageRow>;
  deliveries: readonly DeliveryRow[];
  /** The subscriptions that existed, enabled, for the whole run. */
  subscriptions: readonly SubscriptionInfo[];
  /** Per subscription id: message id → 2xx receipts at that subscription's endpoint or queue. */
  receipts: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** `messageId|subscriptionId` of dead deliveries the API showed as dead on a failed message. */
  deadVisible: ReadonlySet<string>;
  /** Per subscription id: requests whose webhook signature did not verify with its secret. */
  forged?: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

export interface Finding {
  id: string;
  subscription?: string;
  reason: string;
}

export interface InvariantReport {
  messages: number;
  byKind: Record<string, number>;
  committed: number;
  rolledBack: number;
  /** (message, subscription) pairs a committed message had to reach. */
  expectedDeliveries: number;
  /** Pairs received at least once by the endpoint or queue. */
  delivered: number;
  /** Pairs dead in MySQL and shown as dead by the API. */
  deadVisible: number;
  /** Receipts beyond the first per pair (at-least-once: counted, allowed). */
  duplicates: number;
  lost: Finding[];
  phantom: Finding[];
  impossible: Finding[];
}

const COMMITTED = new Set(['confirmed', 'delivered', 'failed']);
const UNDECIDED = new Set(['prepared', 'unresolved']);

/**
 * Herald's promise, checked after the run: every message the producer committed reached every
 * matching subscription at least once or is dead and visible (else **lost**); nothing the
 * producer rolled back, and nothing Herald does not know, reached anyone (else **phantom**);
 * and no row is in a state the state machines forbid (else **impossible**).
 */
export function checkInvariants(input: InvariantInput): InvariantReport {
  const report: InvariantReport = {
    messages: input.plans.size,
    byKind: {},
    committed: 0,
    rolledBack: 0,
    expectedDeliveries: 0,
    delivered: 0,
    deadVisible: 0,
    duplicates: 0,
    lost: [],
    phantom: [],
    impossible: [],
  };
  const byMessage = new Map<string, DeliveryRow[]>();
  for (const d of input.deliveries) {
    const list = byMessage.get(d.messageId) ?? [];
    list.push(d);
    byMessage.set(d.messageId, list);
  }
  const subscriptionById = new Map(input.subscriptions.map((s) => [s.id, s]));

  for (const plan of input.plans.values()) {
    report.byKind[plan.kind] = (report.byKind[plan.kind] ?? 0) + 1;
    for (const v of plan.violations) report.impossible.push({ id: plan.id, reason: `API: ${v}` });
    const row = input.messages.get(plan.id);
    const rows = byMessage.get(plan.id) ?? [];
    if (plan.truth === 'commit') report.committed++;
    else report.rolledBack++;
    if (!row) {
      if (plan.acknowledged && plan.truth === 'commit') report.lost.push({ id: plan.id, reason: 'acknowledged by the API but not in MySQL' });
      else if (plan.acknowledged) report.impossible.push({ id: plan.id, reason: 'acknowledged by the API but not in MySQL' });
      if (rows.length) report.impossible.push({ id: plan.id, reason: 'deliveries without a message' });
      continue;
    }
    if (UNDECIDED.has(row.status)) {
      (plan.truth === 'commit' ? report.lost : report.impossible).push({ id: plan.id, reason: `still ${row.status} after the run converged` });
      continue;
    }
    if (row.status === 'cancelled') {
      if (plan.truth === 'commit') report.lost.push({ id: plan.id, reason: 'the producer committed but Herald cancelled it' });
      if (rows.length) report.impossible.push({ id: plan.id, reason: `cancelled with ${rows.length} deliveries` });
      continue;
    }
    if (!COMMITTED.has(row.status)) {
      report.impossible.push({ id: plan.id, reason: `unknown status ${row.status}` });
      continue;
    }
    if (plan.truth !== 'commit') {
      report.phantom.push({ id: plan.id, reason: `the producer rolled back but Herald has it ${row.status}` });
      continue;
    }

    const expected = input.subscriptions.filter((s) => topicMatches(s.topic, plan.topic));
    const rowBySub = new Map(rows.map((d) => [d.subscriptionId, d]));
    for (const d of rows) {
      if (!expected.some((s) => s.id === d.subscriptionId)) report.impossible.push({ id: plan.id, subscription: d.subscriptionId, reason: 'a delivery to a subscription the topic does not match' });
    }
    const statuses = rows.map((d) => d.status);
    const rollUp = statuses.includes('dead') ? 'failed' : statuses.length && statuses.every((s) => s === 'delivered') ? 'delivered' : 'confirmed';
    if (!statuses.includes('pending') && rollUp !== row.status) report.impossible.push({ id: plan.id, reason: `message is ${row.status} but its deliveries are [${statuses.join(', ')}]` });

    for (const s of expected) {
      report.expectedDeliveries++;
      const received = input.receipts.get(s.id)?.get(plan.id) ?? 0;
      const d = rowBySub.get(s.id);
      if (received > 0) {
        report.delivered++;
        report.duplicates += received - 1;
      }
      if (!d) {
        report.lost.push({ id: plan.id, subscription: s.name, reason: 'no delivery row for a matching subscription' });
      } else if (d.status === 'delivered') {
        if (received === 0) report.lost.push({ id: plan.id, subscription: s.name, reason: 'delivered in MySQL, never received' });
      } else if (d.status === 'dead') {
        if (input.deadVisible.has(`${plan.id}|${s.id}`)) report.deadVisible++;
        else if (received === 0) report.lost.push({ id: plan.id, subscription: s.name, reason: 'dead but not visible through the API' });
      } else if (received === 0) {
        report.lost.push({ id: plan.id, subscription: s.name, reason: `delivery still ${d.status} after the run converged` });
      }
    }
  }

  // Receipts nobody should have had.
  for (const [subscriptionId, received] of input.receipts) {
    const sub = subscriptionById.get(subscriptionId);
    for (const [id, count] of received) {
      if (count === 0) continue;
      const plan = input.plans.get(id);
      const row = input.messages.get(id);
      const where = sub?.name ?? subscriptionId;
      if (!plan) report.phantom.push({ id, subscription: where, reason: 'received a message the producer never sent' });
      else if (plan.truth !== 'commit' || !row || !COMMITTED.has(row.status)) report.phantom.push({ id, subscription: where, reason: `received a message that is ${row?.status ?? 'not stored'} (producer: ${plan.truth ?? 'undecided'})` });
      else if (sub && !topicMatches(sub.topic, plan.topic)) report.phantom.push({ id, subscription: where, reason: `received topic ${plan.topic}, which ${sub.topic} does not match` });
    }
  }
  for (const [subscriptionId, requests] of input.forged ?? []) {
    const where = subscriptionById.get(subscriptionId)?.name ?? subscriptionId;
    for (const [id, count] of requests) if (count > 0) report.phantom.push({ id, subscription: where, reason: `${count} request(s) whose signature did not verify` });
  }
  return report;
}
