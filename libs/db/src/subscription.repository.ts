import { randomBytes } from 'node:crypto';
import { and, asc, eq, gt, or } from 'drizzle-orm';
import { DEFAULT_BACKOFF, DEFAULT_MAX_ATTEMPTS, topicMatches, type BackoffPolicy, type SigningSecrets, type Subscription, type Target } from '@herald/domain';
import type { HeraldDb } from './connection';
import { subscriptions, type SubscriptionRow } from './schema/deliveries';

export interface NewSubscription {
  name: string;
  topic: string;
  target: Target;
  maxAttempts?: number;
  backoff?: Partial<BackoffPolicy>;
  enabled?: boolean;
}

export type SubscriptionPatch = Partial<NewSubscription>;

export interface SubscriptionWithSecrets extends Subscription, SigningSecrets {}

type Executor = Pick<HeraldDb, 'select'>;

/** A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export class SubscriptionRepository {
  constructor(
    private readonly db: HeraldDb,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Creates a subscription; a webhook one gets a signing secret, returned here and on rotation only. */
  async create(input: NewSubscription): Promise<{ subscription: Subscription; secret: string | null }> {
    const now = this.now();
    const secret = input.target.type === 'webhook' ? generateWebhookSecret() : null;
    const row: SubscriptionRow = {
      id: `sub_${randomBytes(10).toString('hex')}`,
      name: input.name,
      topicPattern: input.topic,
      targetType: input.target.type,
      target: JSON.stringify(input.target),
      maxAttempts: input.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      backoffInitialMs: input.backoff?.initialMs ?? DEFAULT_BACKOFF.initialMs,
      backoffMaxMs: input.backoff?.maxMs ?? DEFAULT_BACKOFF.maxMs,
      enabled: input.enabled ?? true,
      disabledReason: null,
      secret,
      previousSecret: null,
      previousSecretExpiresAt: null,
      createdAt: now,
      updatedAt: now,
    };
    await this.db.insert(subscriptions).values(row);
    return { subscription: toSubscription(row), secret };
  }

  async get(id: string): Promise<SubscriptionWithSecrets | undefined> {
    const [row] = await this.db.select().from(subscriptions).where(eq(subscriptions.id, id)).limit(1);
    return row && { ...toSubscription(row), secret: row.secret ?? '', previousSecret: row.previousSecret, previousSecretExpiresAt: row.previousSecretExpiresAt };
  }

  /** Oldest first; `after` is the (createdAt, id) of the last item of the previous page. */
  async list(limit: number, after?: { createdAt: Date; id: string }): Promise<Subscription[]> {
    const rows = await this.db
      .select()
      .from(subscriptions)
      .where(after ? or(gt(subscriptions.createdAt, after.createdAt), and(eq(subscriptions.createdAt, after.createdAt), gt(subscriptions.id, after.id))) : undefined)
      .orderBy(asc(subscriptions.createdAt), asc(subscriptions.id))
      .limit(limit);
    return rows.map(toSubscription);
  }

  async update(id: string, patch: SubscriptionPatch): Promise<Subscription | undefined> {
    const current = await this.get(id);
    if (!current) return undefined;
    const set: Partial<SubscriptionRow> = { updatedAt: this.now() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.topic !== undefined) set.topicPattern = patch.topic;
    if (patch.target !== undefined) {
      set.target = JSON.stringify(patch.target);
      set.targetType = patch.target.type;
      // A subscription that becomes a webhook needs a key to sign with.
      if (patch.target.type === 'webhook' && !current.secret) set.secret = generateWebhookSecret();
    }
    if (patch.maxAttempts !== undefined) set.maxAttempts = patch.maxAttempts;
    if (patch.backoff?.initialMs !== undefined) set.backoffInitialMs = patch.backoff.initialMs;
    if (patch.backoff?.maxMs !== undefined) set.backoffMaxMs = patch.backoff.maxMs;
    if (patch.enabled !== undefined) {
      set.enabled = patch.enabled;
      set.disabledReason = null;
    }
    await this.db.update(subscriptions).set(set).where(eq(subscriptions.id, id));
    return (await this.get(id)) as Subscription;
  }

  async delete(id: string): Promise<boolean> {
    const [result] = await this.db.delete(subscriptions).where(eq(subscriptions.id, id));
    return result.affectedRows === 1;
  }

  /** New secret; the old one keeps signing (both signatures are sent) for `graceMs`. */
  async rotateSecret(id: string, graceMs: number): Promise<{ secret: string; previousSecretExpiresAt: Date } | undefined> {
    const current = await this.get(id);
    if (!current || current.target.type !== 'webhook') return undefined;
    const now = this.now();
    const secret = generateWebhookSecret();
    const previousSecretExpiresAt = new Date(now.getTime() + graceMs);
    await this.db
      .update(subscriptions)
      .set({ secret, previousSecret: current.secret, previousSecretExpiresAt, updatedAt: now })
      .where(eq(subscriptions.id, id));
    return { secret, previousSecretExpiresAt };
  }

  /** Whether any enabled subscription delivers to RabbitMQ (readiness then checks the broker). */
  async usesRabbitMq(): Promise<boolean> {
    const [row] = await this.db
      .select({ id: subscriptions.id })
      .from(subscriptions)
      .where(and(eq(subscriptions.enabled, true), eq(subscriptions.targetType, 'rabbitmq')))
      .limit(1);
    return row !== undefined;
  }

  /** Herald disables a subscription itself when its endpoint says it is gone. */
  async disable(id: string, reason: string): Promise<void> {
    await this.db.update(subscriptions).set({ enabled: false, disabledReason: reason.slice(0, 500), updatedAt: this.now() }).where(eq(subscriptions.id, id));
  }

  /** Enabled subscriptions whose pattern matches `topic`, read through `executor` (a transaction at confirm). */
  static async matching(executor: Executor, topic: string): Promise<Subscription[]> {
    return (await SubscriptionRepository.enabled(executor)).filter((s) => topicMatches(s.topic, topic));
  }

  /** Every enabled subscription, read through `executor` (a confirm transaction matches them itself). */
  static async enabled(executor: Executor): Promise<Subscription[]> {
    const rows = await executor.select().from(subscriptions).where(eq(subscriptions.enabled, true));
    return rows.map(toSubscription);
  }
}

export function toSubscription(row: SubscriptionRow): Subscription {
  return {
    id: row.id,
    name: row.name,
    topic: row.topicPattern,
    target: JSON.parse(row.target) as Target,
    maxAttempts: row.maxAttempts,
    backoff: { initialMs: row.backoffInitialMs, maxMs: row.backoffMaxMs },
    enabled: row.enabled,
    disabledReason: row.disabledReason,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}
