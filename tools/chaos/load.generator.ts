import { randomBytes } from 'node:crypto';
import { consumerMessageId } from '@herald/domain';
import type { ApiClient } from './herald-api.client';
import type { CheckAnswer } from './check.endpoint';

/**
 * How the producer handles one message:
 * - `confirm`: prepare, commit its local transaction, confirm;
 * - `cancel`: prepare, roll back, cancel;
 * - `direct`: publish with `confirm: true`;
 * - `check-commit` / `check-rollback`: prepare, commit or roll back, then never say so (a lost
 *   confirm): Herald's check-back must find out;
 * - `check-unknown`: as check-commit, but the first checks find the transaction still open;
 * - `probe`: a direct publish the fault injector uses to time recovery.
 */
export type MessageKind = 'confirm' | 'cancel' | 'direct' | 'check-commit' | 'check-rollback' | 'check-unknown' | 'probe';

/** The producer's side of one message: what it did, what Herald answered, and the truth. */
export interface PlannedMessage {
  /** The tenant whose producer key prepared it. */
  tenant: string;
  id: string;
  /**
   * What consumers de-duplicate by (`webhook-id`, AMQP `messageId`): the bare id in tenant
   * `default`, `<tenant>/<id>` in any other. Plans, receipts and rows are all keyed by it.
   */
  deliveryId: string;
  kind: MessageKind;
  topic: string;
  /**
   * The producer's local transaction: `commit`, `rollback`, or undefined while it has not
   * decided. A direct publish is `commit`; a prepare nobody acknowledged is `rollback` (a
   * careful producer does not run its transaction then).
   */
  truth?: 'commit' | 'rollback';
  /** A 2xx on the prepare (or direct publish): Herald must have the message. */
  acknowledged: boolean;
  /** Answers that contradict the producer's truth (e.g. a confirm answered 409). */
  violations: string[];
}

/** Topics and how often each is used; `noise.tick` matches no subscription. */
export const TOPICS: ReadonlyArray<[string, number]> = [
  ['order.paid', 30],
  ['order.shipped', 20],
  ['user.created', 15],
  ['user.paid', 10],
  ['audit.login', 10],
  ['noise.tick', 15],
];

const KINDS: ReadonlyArray<[MessageKind, number]> = [
  ['confirm', 30],
  ['cancel', 18],
  ['direct', 25],
  ['check-commit', 10],
  ['check-rollback', 9],
  ['check-unknown', 8],
];

/** Checks a check-unknown message answers `unknown` before its transaction commits. */
export const UNKNOWN_CHECKS = 2;

function pick<T>(weighted: ReadonlyArray<[T, number]>): T {
  const total = weighted.reduce((s, [, w]) => s + w, 0);
  let r = Math.random() * total;
  for (const [value, w] of weighted) {
    r -= w;
    if (r < 0) return value;
  }
  return weighted[0]![0];
}

/** The producer's answer to a check-back, from what it has decided so far. */
export function checkAnswer(plan: PlannedMessage | undefined, check: number): CheckAnswer {
  if (!plan) return 'unknown';
  if (plan.kind === 'check-unknown' && check <= UNKNOWN_CHECKS) return 'unknown';
  return plan.truth ?? 'unknown';
}

/** One tenant's producer: its own key (hence tenant) and its own check endpoint path. */
export interface Producer {
  tenant: string;
  api: ApiClient;
  checkUrl: string;
}

export interface LoadOptions {
  messages: number;
  durationMs: number;
  concurrency: number;
  runId: string;
  /**
   * Share of a tenant's messages that reuse an id another tenant already prepared: ids are
   * unique per tenant only, and the same id must live two independent lives.
   */
  sharedIdRate?: number;
}

const isOk = (status: number) => status >= 200 && status < 300;
/** Keys the prepared messages spread over (a shared id keeps its original id, so its key too). */
const KEYS = 200;

/**
 * The load: `messages` producers' transactions spread over `durationMs`, at most `concurrency`
 * at a time, taking turns among the tenants' producers, each recorded in `plans` (by delivery
 * id) before its first request.
 */
export class LoadGenerator {
  readonly plans = new Map<string, PlannedMessage>();
  /** Ids held by more than one tenant. */
  readonly sharedIds = new Set<string>();
  private seq = 0;
  /** Per tenant: ids other tenants prepared that this one has not used yet. */
  private readonly reusable = new Map<string, string[]>();

  constructor(
    private readonly producers: readonly Producer[],
    private readonly options: LoadOptions,
  ) {
    if (new Set(producers.map((p) => p.tenant)).size !== producers.length) throw new Error('one producer per tenant');
    for (const p of producers) this.reusable.set(p.tenant, []);
  }

  /** A new message of `producer` (by default the first); it may take an id another tenant holds. */
  newPlan(kind: MessageKind, topic: string, producer: Producer = this.producers[0]!): PlannedMessage {
    const pool = this.reusable.get(producer.tenant)!;
    const shared = kind !== 'probe' && pool.length > 0 && Math.random() < (this.options.sharedIdRate ?? 0) ? pool.shift() : undefined;
    const id = shared ?? `${this.options.runId}-${kind}-${++this.seq}-${randomBytes(3).toString('hex')}`;
    if (shared) this.sharedIds.add(shared);
    else for (const other of this.producers) if (other !== producer) this.reusable.get(other.tenant)!.push(id);
    const plan: PlannedMessage = { tenant: producer.tenant, id, deliveryId: consumerMessageId(producer.tenant, id), kind, topic, acknowledged: false, violations: [] };
    if (kind === 'direct' || kind === 'probe') plan.truth = 'commit';
    this.plans.set(plan.deliveryId, plan);
    return plan;
  }

  private producerOf(plan: PlannedMessage): Producer {
    return this.producers.find((p) => p.tenant === plan.tenant)!;
  }

  async run(): Promise<void> {
    const { messages, durationMs, concurrency } = this.options;
    const started = Date.now();
    let issued = 0;
    const worker = async () => {
      while (issued < messages) {
        const n = issued++;
        // Spread the starts evenly over the duration, so the faults land in the middle of the load.
        const due = started + (n * durationMs) / messages;
        if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
        await this.one(this.newPlan(pick(KINDS), pick(TOPICS), this.producers[n % this.producers.length]));
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  /** Publishes one message directly and returns once Herald acknowledged it (or gave up). */
  async direct(plan: PlannedMessage, pinned?: string): Promise<boolean> {
    const res = await this.producerOf(plan).api.call('POST', '/v1/messages', { id: plan.id, topic: plan.topic, payload: { kind: plan.kind, at: Date.now() }, confirm: true }, 90_000, pinned);
    if (res && isOk(res.status)) plan.acknowledged = true;
    else if (res) plan.violations.push(`direct publish answered ${res.status}`);
    return plan.acknowledged;
  }

  private async one(plan: PlannedMessage): Promise<void> {
    if (plan.kind === 'direct') {
      await this.direct(plan);
      return;
    }
    const producer = this.producerOf(plan);
    const checkAfterMs = plan.kind === 'confirm' || plan.kind === 'cancel' ? 4_000 : 500 + Math.floor(Math.random() * 1_500);
    const prepared = await producer.api.call('POST', '/v1/messages', {
      id: plan.id,
      topic: plan.topic,
      // A bounded set of keys, so the ordered subscription sees sequences of several messages per key.
      key: `acct-${parseInt(plan.id.slice(-6), 16) % KEYS}`,
      payload: { kind: plan.kind, at: Date.now() },
      checkUrl: producer.checkUrl,
      checkAfterMs,
      checkIntervalMs: 300,
      maxChecks: 25,
      onChecksExhausted: 'rollback',
    });
    if (!prepared || !isOk(prepared.status)) {
      if (prepared) plan.violations.push(`prepare answered ${prepared.status}`);
      // No acknowledged prepare: the producer does not run its transaction.
      plan.truth = 'rollback';
      return;
    }
    plan.acknowledged = true;
    const commits = plan.kind === 'confirm' || plan.kind === 'check-commit' || plan.kind === 'check-unknown';
    // The local transaction happens here; from now on a check-back gets this answer.
    plan.truth = commits ? 'commit' : 'rollback';
    if (plan.kind !== 'confirm' && plan.kind !== 'cancel') return;
    const verb = plan.kind;
    const decided = await producer.api.call('POST', `/v1/messages/${plan.id}/${verb}`);
    if (!decided) return; // unknown outcome: the check-back settles it
    if (!isOk(decided.status)) plan.violations.push(`${verb} answered ${decided.status}: ${JSON.stringify(decided.body).slice(0, 200)}`);
  }
}
