import { deliveryOrderKey, topicMatches, type DeliveryJobRef, type SigningSecrets, type StoredMessage, type Subscription } from '@herald/domain';
import type { HeraldDb } from './connection';
import { busyOrderKeys, isBusy, lockOrderKeys, setLastDeliveries, type OrderKeyRef } from './key-order';
import { deliveryInserts, INSERT_DELIVERIES, newDeliveryValues, SELECT_NEW_DELIVERIES } from './delivery.statements';
import type { LeaseSlots } from './lease-slots';
import type { AttemptContext, DeliverySummary } from './rows';
import type { DeliveryRow } from './schema/deliveries';
import { FAIL_UNLESS_ROW_COUNT, runSql, selectSql, toNumber, type SqlExecutor } from './sql.runner';
import { foldedTransaction, type FoldedTransaction, type FoldedTransactionOptions, type Statement } from './folded-transaction';
import { SubscriptionRepository } from './subscription.repository';
import type { Tx } from './transactions';

/** A delivery created with its lease held by this process, and everything its first attempt needs. */
export interface LeasedDelivery {
  job: DeliveryJobRef;
  context: AttemptContext & { subscription: Subscription & SigningSecrets };
}

/** The deliveries one message's commit created. */
export interface FanOut {
  /** For the dispatcher: every delivery created but those in `leased`. */
  jobs: DeliveryJobRef[];
  /** The API's view of all of them, by id. */
  deliveries: DeliverySummary[];
  /** Created leased to this process (each holds one slot): the dispatcher runs them. */
  leased: LeasedDelivery[];
}

/** A commit that created no delivery (each call a fresh object: callers may add to it). */
export const noFanOut = (): FanOut => ({ jobs: [], deliveries: [], leased: [] });

/** The slots one try of a transaction took: given back if it fails, handed over with its leases if it commits. */
export class SlotHold {
  private taken = 0;

  constructor(readonly slots: LeaseSlots) {}

  take(wanted: number): number {
    const granted = this.slots.take(wanted);
    this.taken += granted;
    return granted;
  }

  /** Gives back what the committed try took beyond its leased deliveries (each of those keeps its slot). */
  settle(leased: number): void {
    this.slots.give(this.taken - leased);
    this.taken = 0;
  }
}

/**
 * One try of a (folded) transaction whose fan-out may create leased deliveries. If it fails (or
 * its answer is lost) its slots are given back and the rows' leases just expire: the reconciler takes them.
 */
export async function leasingTransaction<T>(
  db: HeraldDb,
  slots: LeaseSlots | undefined,
  work: (tx: FoldedTransaction, hold: SlotHold | undefined) => Promise<T>,
  leased: (result: T) => number,
  options: FoldedTransactionOptions = {},
): Promise<T> {
  const hold = slots && new SlotHold(slots);
  let result: T;
  try {
    result = await foldedTransaction(db, (tx) => work(tx, hold), options);
  } catch (error) {
    hold?.settle(0);
    throw error;
  }
  hold?.settle(leased(result));
  return result;
}

/** A message whose deliveries a commit creates; `stored` (its API form) lets them be leased. */
export interface FanOutSource {
  /** Names the message whatever its tenant: deliveries reference it by this. */
  seq: bigint;
  id: string;
  tenant: string;
  topic: string;
  key: string | null;
  delayMs: number;
  stored?: StoredMessage;
}

/**
 * Creates one pending delivery per enabled subscription matching each message's topic, inside
 * the transaction that commits the messages: one read of the subscriptions, multi-row INSERTs
 * and one read-back for the whole batch. With `hold`, deliveries due now of messages given with
 * `stored` are created leased to this process, as many as it has slots for.
 */
export async function fanOut(tx: SqlExecutor, batch: readonly FanOutSource[], now: Date, hold?: SlotHold): Promise<Map<bigint, FanOut>> {
  if (batch.length === 0) return new Map();
  const planned = planDeliveries(await SubscriptionRepository.enabledFor(tx, batch.map((m) => m.topic)), batch, now);
  if (planned.length === 0) return new Map();
  const ordered = await waitTurns(tx, planned, now);
  leaseDue(planned, now, hold);
  const statements = writeStatements(planned, now);
  const [readBack, readBackValues] = statements.pop() as Statement;
  for (const [text, values] of statements) await runSql(tx, text, values ?? []);
  const rows = await selectSql<NewDeliveryRecord>(tx, readBack, readBackValues ?? []);
  return settle(tx, planned, rows, ordered, now);
}

/**
 * The fan-out in a folded transaction: `enabled` came with an earlier trip, and the `before`
 * statements (the batch's own writes) travel with its INSERTs and read-back in one trip. With
 * `commit` that trip also commits. Ordered deliveries need their keys locked and read first, and
 * their last ids written after the read-back, so those batches take more trips.
 */
export async function foldedFanOut(
  tx: FoldedTransaction,
  enabled: ReadonlyArray<Subscription & SigningSecrets>,
  batch: readonly FanOutSource[],
  now: Date,
  hold: SlotHold | undefined,
  before: readonly Statement[],
  options: { commit?: boolean } = {},
): Promise<{ fanOuts: Map<bigint, FanOut>; answers: unknown[] }> {
  const planned = batch.length === 0 ? [] : planDeliveries(enabled, batch, now);
  if (planned.length === 0) return { fanOuts: new Map(), answers: await tx.send(before, options) };
  const ordered = planned.some((p) => p.orderKey !== null);
  let answers: unknown[] = [];
  if (ordered) {
    answers = await tx.send(before);
    before = [];
    await waitTurns(tx, planned, now);
  }
  leaseDue(planned, now, hold);
  const trips = writeTrips(planned, now);
  let sent: unknown[] = [];
  for (const [i, trip] of trips.entries()) {
    const last = i === trips.length - 1;
    sent = await tx.send(i === 0 ? [...before, ...trip] : trip, { commit: last && options.commit === true && !ordered });
    if (i === 0 && before.length > 0) answers = sent.slice(0, before.length);
  }
  return { fanOuts: await settle(tx, planned, sent.at(-1) as NewDeliveryRecord[], ordered, now), answers };
}

/** One planned delivery per enabled subscription matching each message's topic, in batch order. */
function planDeliveries(enabled: ReadonlyArray<Subscription & SigningSecrets>, batch: readonly FanOutSource[], now: Date): PlannedDelivery[] {
  return batch.flatMap((message) => {
    const runAt = new Date(now.getTime() + message.delayMs);
    return enabled
      .filter((s) => topicMatches(s.topic, message.topic))
      .map((subscription) => ({ message, subscription, runAt: runAt as Date | null, leaseUntil: null as Date | null, orderKey: deliveryOrderKey(subscription.ordering, message.tenant, message.key) }));
  });
}

/** With `hold`: deliveries due now of messages given with `stored` are leased to this process, as many as it has slots for. */
function leaseDue(planned: PlannedDelivery[], now: Date, hold: SlotHold | undefined): void {
  if (!hold) return;
  const leasable = planned.filter((p) => p.message.stored && p.message.delayMs === 0 && p.runAt !== null);
  const granted = leasable.length > 0 ? hold.take(leasable.length) : 0;
  for (const p of leasable.slice(0, granted)) p.leaseUntil = new Date(now.getTime() + hold.slots.leaseMs(p.subscription.target));
}

/**
 * The INSERTs of the planned deliveries, then the read-back of their ids, for an ordinary
 * transaction: each statement is its own round trip and fails on its own, so no guards.
 */
function writeStatements(planned: readonly PlannedDelivery[], now: Date): Statement[] {
  return writeTrips(planned, now)
    .flat()
    .filter(([text]) => text !== FAIL_UNLESS_ROW_COUNT);
}

/**
 * The INSERTs of the planned deliveries, one chunk per trip (each sized to fit a packet alone),
 * each followed by a guard that fails the trip unless it wrote every row; the read-back of their
 * ids ends the last trip, so it finds every row it looks for.
 */
function writeTrips(planned: readonly PlannedDelivery[], now: Date): Statement[][] {
  // Row order is id order: a key's deliveries of this batch join its sequence in batch order.
  const values = planned.map((p) => newDeliveryValues(p.message, p.subscription.id, p.subscription.target.type, p.runAt, now, p.leaseUntil, p.orderKey));
  const seqs = [...new Set(planned.map((p) => p.message.seq))];
  const trips = deliveryInserts(values).map((chunk): Statement[] => [[INSERT_DELIVERIES, [chunk]], [FAIL_UNLESS_ROW_COUNT, [chunk.length]]]);
  trips.at(-1)?.push([SELECT_NEW_DELIVERIES, [seqs]]);
  return trips;
}

type NewDeliveryRecord = { id: string | number; message_seq: string | number; subscription_id: string };

/** Each message's fan-out from the read-back of its new deliveries; an ordered batch records its keys' last deliveries. */
async function settle(tx: SqlExecutor, planned: readonly PlannedDelivery[], rows: readonly NewDeliveryRecord[], ordered: boolean, now: Date): Promise<Map<bigint, FanOut>> {
  const result = new Map<bigint, FanOut>();
  const ids = new Map(rows.map((r) => [`${r.message_seq}\n${r.subscription_id}`, toNumber(r.id)]));
  const lastOfKey = new Map<string, OrderKeyRef & { deliveryId: number }>();
  for (const p of planned) {
    const id = ids.get(`${p.message.seq}\n${p.subscription.id}`);
    // The read-back runs in the inserting transaction under the unique (message, subscription) key.
    if (id === undefined) throw new Error(`delivery of message ${p.message.id} to ${p.subscription.id} missing after its insert`);
    if (p.orderKey !== null) lastOfKey.set(`${p.subscription.id}\n${p.orderKey}`, { subscriptionId: p.subscription.id, orderKey: p.orderKey, deliveryId: Math.max(id, lastOfKey.get(`${p.subscription.id}\n${p.orderKey}`)?.deliveryId ?? 0) });
    const job = { deliveryId: id, generation: 0, attempt: 0, runAt: p.runAt ?? now };
    const entry = result.get(p.message.seq) ?? noFanOut();
    entry.deliveries.push({ id, subscriptionId: p.subscription.id, targetType: p.subscription.target.type, status: 'pending', attempts: 0, lastError: null, lastStatusCode: null, nextAttemptAt: p.runAt, deliveredAt: null, deadAt: null, skippedAt: null });
    if (p.leaseUntil && p.message.stored) {
      const delivery: DeliveryRow = {
        id,
        messageSeq: p.message.seq,
        messageId: p.message.id,
        subscriptionId: p.subscription.id,
        targetType: p.subscription.target.type,
        status: 'pending',
        attempts: 0,
        generation: 0,
        nextAttemptAt: p.runAt,
        leaseUntil: p.leaseUntil,
        lastError: null,
        lastStatusCode: null,
        createdAt: now,
        updatedAt: now,
        deliveredAt: null,
        deadAt: null,
        orderKey: p.orderKey,
        skippedAt: null,
      };
      entry.leased.push({ job, context: { delivery, message: p.message.stored, subscription: p.subscription } });
    } else if (p.runAt !== null) {
      entry.jobs.push(job);
    }
    result.set(p.message.seq, entry);
  }
  if (ordered) await setLastDeliveries(tx, [...lastOfKey.values()], now);
  // API order: deliveries by id, as a read of them would list them.
  for (const entry of result.values()) entry.deliveries.sort((a, b) => a.id - b.id);
  return result;
}

interface PlannedDelivery {
  message: FanOutSource;
  subscription: Subscription & SigningSecrets;
  /** Null: it waits behind an earlier delivery of its key, which will make it due. */
  runAt: Date | null;
  leaseUntil: Date | null;
  orderKey: string | null;
}

/**
 * For ordered deliveries: locks their keys and leaves due only the first of each key whose
 * sequence has no open tail; the others wait (no `runAt`). Whether any delivery is ordered.
 */
async function waitTurns(tx: SqlExecutor, planned: PlannedDelivery[], now: Date): Promise<boolean> {
  const refs = planned.flatMap((p) => (p.orderKey === null ? [] : [{ subscriptionId: p.subscription.id, orderKey: p.orderKey }]));
  if (refs.length === 0) return false;
  await lockOrderKeys(tx, refs, now);
  const busy = await busyOrderKeys(tx, refs);
  const taken = new Set<string>();
  for (const p of planned) {
    if (p.orderKey === null) continue;
    const ref = { subscriptionId: p.subscription.id, orderKey: p.orderKey };
    const name = `${ref.subscriptionId}\n${ref.orderKey}`;
    if (isBusy(busy, ref) || taken.has(name)) p.runAt = null;
    taken.add(name);
  }
  return true;
}

/** The fan-out of one message (see `fanOut`). */
export async function fanOutOne(tx: Tx, message: FanOutSource, now: Date): Promise<FanOut> {
  return (await fanOut(tx, [message], now)).get(message.seq) ?? noFanOut();
}
