import { consumerMessageId, topicMatches } from '@herald/domain';
import type { PlannedMessage } from './load.generator';
import type { RefusedCheck } from './check.endpoint';
import { tenantOfDeliveryId, type Arrival } from './webhook.endpoint';

export interface StoredMessageRow {
  tenant: string;
  id: string;
  status: string;
}

export interface DeliveryRow {
  /** The tenant of the delivery's message (deliveries name their message by seq; the run joins). */
  tenant: string;
  messageId: string;
  subscriptionId: string;
  status: string;
}

export interface SubscriptionInfo {
  id: string;
  name: string;
  topic: string;
}

/**
 * Everything is keyed by delivery id (`webhook-id` / AMQP `messageId`: the bare id in tenant
 * `default`, `<tenant>/<id>` elsewhere), as a consumer de-duplicates: the same id in two tenants
 * is two messages, and a receipt counts for the tenant its delivery id names, never another.
 */
export interface InvariantInput {
  /** By delivery id. */
  plans: ReadonlyMap<string, PlannedMessage>;
  messages: readonly StoredMessageRow[];
  deliveries: readonly DeliveryRow[];
  /** The subscriptions that existed, enabled, for the whole run. */
  subscriptions: readonly SubscriptionInfo[];
  /** Per subscription id: delivery id → 2xx receipts at that subscription's endpoint or queue. */
  receipts: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** `deliveryId|subscriptionId` of dead deliveries the API showed as dead on a failed message. */
  deadVisible: ReadonlySet<string>;
  /** Per subscription id: requests whose webhook signature did not verify with its secret. */
  forged?: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Per subscription id: deliveries whose `herald-tenant` was not the tenant their id names. */
  wrongTenant?: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Check calls a tenant's endpoint refused: signed with another secret, or naming another tenant. */
  refusedChecks?: readonly RefusedCheck[];
}

export interface Finding {
  tenant: string;
  id: string;
  subscription?: string;
  reason: string;
}

/** One tenant's share of the run. */
export interface TenantTotals {
  messages: number;
  committed: number;
  rolledBack: number;
  expectedDeliveries: number;
  delivered: number;
  deadVisible: number;
  duplicates: number;
  lost: number;
  phantom: number;
  impossible: number;
}

export interface InvariantReport {
  messages: number;
  /** Ids that more than one tenant used, each for its own message. */
  sharedIds: number;
  byTenant: Record<string, TenantTotals>;
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
    sharedIds: 0,
    byTenant: {},
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
    const key = consumerMessageId(d.tenant, d.messageId);
    const list = byMessage.get(key) ?? [];
    list.push(d);
    byMessage.set(key, list);
  }
  const messages = new Map(input.messages.map((m) => [consumerMessageId(m.tenant, m.id), m]));
  const subscriptionById = new Map(input.subscriptions.map((s) => [s.id, s]));
  const totals = (tenant: string) => (report.byTenant[tenant] ??= { messages: 0, committed: 0, rolledBack: 0, expectedDeliveries: 0, delivered: 0, deadVisible: 0, duplicates: 0, lost: 0, phantom: 0, impossible: 0 });
  const tenantsById = new Map<string, Set<string>>();

  for (const plan of input.plans.values()) {
    const t = totals(plan.tenant);
    t.messages++;
    tenantsById.set(plan.id, (tenantsById.get(plan.id) ?? new Set()).add(plan.tenant));
    const at = { tenant: plan.tenant, id: plan.id };
    report.byKind[plan.kind] = (report.byKind[plan.kind] ?? 0) + 1;
    for (const v of plan.violations) report.impossible.push({ ...at, reason: `API: ${v}` });
    const row = messages.get(plan.deliveryId);
    const rows = byMessage.get(plan.deliveryId) ?? [];
    if (plan.truth === 'commit') {
      report.committed++;
      t.committed++;
    } else {
      report.rolledBack++;
      t.rolledBack++;
    }
    if (!row) {
      if (plan.acknowledged && plan.truth === 'commit') report.lost.push({ ...at, reason: 'acknowledged by the API but not in MySQL' });
      else if (plan.acknowledged) report.impossible.push({ ...at, reason: 'acknowledged by the API but not in MySQL' });
      if (rows.length) report.impossible.push({ ...at, reason: 'deliveries without a message' });
      continue;
    }
    if (UNDECIDED.has(row.status)) {
      (plan.truth === 'commit' ? report.lost : report.impossible).push({ ...at, reason: `still ${row.status} after the run converged` });
      continue;
    }
    if (row.status === 'cancelled') {
      if (plan.truth === 'commit') report.lost.push({ ...at, reason: 'the producer committed but Herald cancelled it' });
      if (rows.length) report.impossible.push({ ...at, reason: `cancelled with ${rows.length} deliveries` });
      continue;
    }
    if (!COMMITTED.has(row.status)) {
      report.impossible.push({ ...at, reason: `unknown status ${row.status}` });
      continue;
    }
    if (plan.truth !== 'commit') {
      report.phantom.push({ ...at, reason: `the producer rolled back but Herald has it ${row.status}` });
      continue;
    }

    const expected = input.subscriptions.filter((s) => topicMatches(s.topic, plan.topic));
    const rowBySub = new Map(rows.map((d) => [d.subscriptionId, d]));
    for (const d of rows) {
      if (!expected.some((s) => s.id === d.subscriptionId)) report.impossible.push({ ...at, subscription: d.subscriptionId, reason: 'a delivery to a subscription the topic does not match' });
    }
    const statuses = rows.map((d) => d.status);
    const rollUp = statuses.includes('dead') ? 'failed' : statuses.length && statuses.every((s) => s === 'delivered') ? 'delivered' : 'confirmed';
    if (!statuses.includes('pending') && rollUp !== row.status) report.impossible.push({ ...at, reason: `message is ${row.status} but its deliveries are [${statuses.join(', ')}]` });

    for (const s of expected) {
      report.expectedDeliveries++;
      t.expectedDeliveries++;
      const received = input.receipts.get(s.id)?.get(plan.deliveryId) ?? 0;
      const d = rowBySub.get(s.id);
      if (received > 0) {
        report.delivered++;
        t.delivered++;
        report.duplicates += received - 1;
        t.duplicates += received - 1;
      }
      if (!d) {
        report.lost.push({ ...at, subscription: s.name, reason: 'no delivery row for a matching subscription' });
      } else if (d.status === 'delivered') {
        if (received === 0) report.lost.push({ ...at, subscription: s.name, reason: 'delivered in MySQL, never received' });
      } else if (d.status === 'dead') {
        if (input.deadVisible.has(`${plan.deliveryId}|${s.id}`)) {
          report.deadVisible++;
          t.deadVisible++;
        } else if (received === 0) report.lost.push({ ...at, subscription: s.name, reason: 'dead but not visible through the API' });
      } else if (received === 0) {
        report.lost.push({ ...at, subscription: s.name, reason: `delivery still ${d.status} after the run converged` });
      }
    }
  }
  for (const tenants of tenantsById.values()) if (tenants.size > 1) report.sharedIds++;

  // Receipts nobody should have had. A receipt is the message of the tenant its delivery id
  // names: tenant A's commit of `x` never excuses a receipt of tenant B's rolled-back `x`.
  for (const [subscriptionId, received] of input.receipts) {
    const sub = subscriptionById.get(subscriptionId);
    for (const [deliveryId, count] of received) {
      if (count === 0) continue;
      const plan = input.plans.get(deliveryId);
      const row = messages.get(deliveryId);
      const at = { tenant: plan?.tenant ?? tenantOfDeliveryId(deliveryId), id: plan?.id ?? deliveryId, subscription: sub?.name ?? subscriptionId };
      if (!plan) report.phantom.push({ ...at, reason: `received ${deliveryId}, which no producer sent` });
      else if (plan.truth !== 'commit' || !row || !COMMITTED.has(row.status)) report.phantom.push({ ...at, reason: `received a message that is ${row?.status ?? 'not stored'} (producer: ${plan.truth ?? 'undecided'})` });
      else if (sub && !topicMatches(sub.topic, plan.topic)) report.phantom.push({ ...at, reason: `received topic ${plan.topic}, which ${sub.topic} does not match` });
    }
  }
  const refusals = (byDelivery: InvariantInput['forged'], reason: string) => {
    for (const [subscriptionId, requests] of byDelivery ?? []) {
      const subscription = subscriptionById.get(subscriptionId)?.name ?? subscriptionId;
      for (const [deliveryId, count] of requests) {
        const plan = input.plans.get(deliveryId);
        if (count > 0) report.phantom.push({ tenant: plan?.tenant ?? tenantOfDeliveryId(deliveryId), id: plan?.id ?? deliveryId, subscription, reason: `${count} request(s) ${reason}` });
      }
    }
  };
  refusals(input.forged, 'whose signature did not verify');
  refusals(input.wrongTenant, 'whose herald-tenant is not the tenant their id names');
  for (const c of input.refusedChecks ?? []) report.phantom.push({ tenant: c.tenant, id: c.id, reason: `check call refused by the tenant’s endpoint: ${c.reason}` });

  for (const [kind, findings] of [['lost', report.lost], ['phantom', report.phantom], ['impossible', report.impossible]] as const) {
    for (const f of findings) totals(f.tenant)[kind]++;
  }
  return report;
}

/**
 * Per-key order at an ordered subscription's endpoint. `sequences`: each key's delivery ids in
 * commit order (delivery id order in MySQL). For every key, first arrivals follow that order,
 * and no message arrives before the one before it was answered 2xx.
 */
export function checkKeyOrder(sequences: ReadonlyMap<string, readonly string[]>, arrivals: readonly Arrival[]): Finding[] {
  const first = new Map<string, number>();
  const firstOk = new Map<string, number>();
  for (const a of arrivals) {
    if (!first.has(a.id)) first.set(a.id, a.at);
    if (a.okAt !== undefined && a.okAt < (firstOk.get(a.id) ?? Infinity)) firstOk.set(a.id, a.okAt);
  }
  const findings: Finding[] = [];
  for (const [key, ids] of sequences) {
    for (let i = 1; i < ids.length; i++) {
      const [before, id] = [ids[i - 1] as string, ids[i] as string];
      const arrived = first.get(id);
      if (arrived === undefined) continue;
      const reason = arrived < (first.get(before) ?? Infinity) ? `arrived before ${before}, which committed first` : arrived < (firstOk.get(before) ?? Infinity) ? `arrived before ${before} was delivered` : undefined;
      if (reason) findings.push({ tenant: tenantOfDeliveryId(id), id, reason: `key ${key}: ${id} ${reason}` });
    }
  }
  return findings;
}
