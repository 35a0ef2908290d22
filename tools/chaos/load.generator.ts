import { randomBytes } from 'node:crypto';
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
  id: string;
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

export interface LoadOptions {
  messages: number;
  durationMs: number;
  concurrency: number;
  checkUrl: string;
  runId: string;
}

const isOk = (status: number) => status >= 200 && status < 300;

/**
 * The load: `messages` producers' transactions spread over `durationMs`, at most `concurrency`
 * at a time, each recorded in `plans` before its first request.
 */
export class LoadGenerator {
  readonly plans = new Map<string, PlannedMessage>();
  private seq = 0;

  constructor(
    private readonly api: ApiClient,
    private readonly options: LoadOptions,
  ) {}

  newPlan(kind: MessageKind, topic: string): PlannedMessage {
    const plan: PlannedMessage = { id: `${this.options.runId}-${kind}-${++this.seq}-${randomBytes(3).toString('hex')}`, kind, topic, acknowledged: false, violations: [] };
    if (kind === 'direct' || kind === 'probe') plan.truth = 'commit';
    this.plans.set(plan.id, plan);
    return plan;
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
        await this.one(this.newPlan(pick(KINDS), pick(TOPICS)));
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  /** Publishes one message directly and returns once Herald acknowledged it (or gave up). */
  async direct(plan: PlannedMessage, pinned?: string): Promise<boolean> {
    const res = await this.api.call('POST', '/v1/messages', { id: plan.id, topic: plan.topic, payload: { kind: plan.kind, at: Date.now() }, confirm: true }, 90_000, pinned);
    if (res && isOk(res.status)) plan.acknowledged = true;
    else if (res) plan.violations.push(`direct publish answered ${res.status}`);
    return plan.acknowledged;
  }

  private async one(plan: PlannedMessage): Promise<void> {
    if (plan.kind === 'direct') {
      await this.direct(plan);
      return;
    }
    const checkAfterMs = plan.kind === 'confirm' || plan.kind === 'cancel' ? 4_000 : 500 + Math.floor(Math.random() * 1_500);
    const prepared = await this.api.call('POST', '/v1/messages', {
      id: plan.id,
      topic: plan.topic,
      key: plan.id.slice(-6),
      payload: { kind: plan.kind, at: Date.now() },
      checkUrl: this.options.checkUrl,
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
    const decided = await this.api.call('POST', `/v1/messages/${plan.id}/${verb}`);
    if (!decided) return; // unknown outcome: the check-back settles it
    if (!isOk(decided.status)) plan.violations.push(`${verb} answered ${decided.status}: ${JSON.stringify(decided.body).slice(0, 200)}`);
  }
}
