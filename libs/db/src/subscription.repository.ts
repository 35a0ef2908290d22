import { createHash, randomBytes } from 'node:crypto';
import { and, asc, eq, gt, ne, or, sql } from 'drizzle-orm';
import type { RowDataPacket } from 'mysql2/promise';
import { DEFAULT_BACKOFF, DEFAULT_MAX_ATTEMPTS, firstWord, type BackoffPolicy, type SigningSecrets, type Subscription, type SubscriptionOrdering, type Target } from '@herald/domain';
import type { HeraldDb } from './connection';
import { subscriptions, type SubscriptionRow } from './schema/subscriptions';
import { selectSql, type SqlExecutor } from './sql.runner';
import { SELECT_SUBSCRIPTIONS_FOR_TOPICS, SUBSCRIPTION_ROW } from './subscription.statements';

export interface NewSubscription {
  name: string;
  topic: string;
  target: Target;
  maxAttempts?: number;
  backoff?: Partial<BackoffPolicy>;
  enabled?: boolean;
  ordering?: SubscriptionOrdering;
}

export type SubscriptionPatch = Partial<NewSubscription>;

export interface SubscriptionWithSecrets extends Subscription, SigningSecrets {}

/** A topic pattern already has as many subscriptions as it may (`HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC`). */
export class SubscriptionLimitError extends Error {
  override readonly name = 'SubscriptionLimitError';
  constructor(
    readonly topic: string,
    readonly limit: number,
  ) {
    super(`topic pattern "${topic}" already has ${limit} subscriptions, the limit`);
  }
}

/** How long a create or a topic change waits for another one on the same pattern. */
const TOPIC_LOCK_TIMEOUT_S = 10;

/** A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export class SubscriptionRepository {
  constructor(
    private readonly db: HeraldDb,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Creates a subscription; a webhook one gets a signing secret, returned here and on rotation
   * only. Throws SubscriptionLimitError if its topic pattern already has `maxPerTopic`.
   */
  async create(input: NewSubscription, maxPerTopic = Infinity): Promise<{ subscription: Subscription; secret: string | null }> {
    return this.withinTopicLimit(input.topic, maxPerTopic, undefined, () => this.insert(input));
  }

  private async insert(input: NewSubscription): Promise<{ subscription: Subscription; secret: string | null }> {
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
      ordering: input.ordering ?? 'none',
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

  /** Changes a subscription; moving it to another topic pattern respects `maxPerTopic` (SubscriptionLimitError). */
  async update(id: string, patch: SubscriptionPatch, maxPerTopic = Infinity): Promise<Subscription | undefined> {
    const current = await this.get(id);
    if (!current) return undefined;
    if (patch.topic !== undefined && patch.topic !== current.topic) {
      const topic = patch.topic;
      return this.withinTopicLimit(topic, maxPerTopic, id, () => this.apply(id, current, patch));
    }
    return this.apply(id, current, patch);
  }

  private async apply(id: string, current: SubscriptionWithSecrets, patch: SubscriptionPatch): Promise<Subscription | undefined> {
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
    // Applies to deliveries created from now on; those already open keep their order (docs/design.md).
    if (patch.ordering !== undefined) set.ordering = patch.ordering;
    await this.db.update(subscriptions).set(set).where(eq(subscriptions.id, id));
    return (await this.get(id)) as Subscription;
  }

  /**
   * Runs `write` only while `topic` has fewer than `limit` subscriptions (not counting `except`),
   * holding a MySQL named lock per pattern from the count until the write has committed, so
   * concurrent creates on any replica queue up instead of all passing the same count.
   */
  private async withinTopicLimit<T>(topic: string, limit: number, except: string | undefined, write: () => Promise<T>): Promise<T> {
    if (!Number.isFinite(limit)) return write();
    // Lock names are at most 64 characters; a digest keeps long patterns apart.
    const lockName = `herald:sub-topic:${createHash('sha256').update(topic).digest('hex').slice(0, 40)}`;
    const connection = await this.db.$client.getConnection();
    let reusable = true;
    try {
      const [rows] = await connection.query<RowDataPacket[]>('SELECT GET_LOCK(?, ?) AS got', [lockName, TOPIC_LOCK_TIMEOUT_S]).catch((error: unknown) => {
        reusable = false;
        throw error;
      });
      if (rows[0]?.got !== 1) {
        // Reported like any lock wait timeout: the caller answers 503 and the client retries.
        throw Object.assign(new Error(`waited ${TOPIC_LOCK_TIMEOUT_S} s for the subscription lock of "${topic}"`), { code: 'ER_LOCK_WAIT_TIMEOUT' });
      }
      try {
        const [row] = await this.db
          .select({ n: sql<string>`COUNT(*)` })
          .from(subscriptions)
          .where(except === undefined ? eq(subscriptions.topicPattern, topic) : and(eq(subscriptions.topicPattern, topic), ne(subscriptions.id, except)));
        if (Number(row?.n ?? 0) >= limit) throw new SubscriptionLimitError(topic, limit);
        return await write();
      } finally {
        await connection.query('SELECT RELEASE_LOCK(?)', [lockName]).catch(() => (reusable = false));
      }
    } finally {
      // A connection in doubt may still hold the lock: close it, and the server drops the lock.
      if (reusable) connection.release();
      else connection.destroy();
    }
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

  /**
   * The enabled subscriptions that may match one of `topics` (not empty), with their signing
   * secrets, read through `executor` (a confirm transaction matches them itself, and hands the
   * secrets to the deliveries it leases). Never for an API answer: the secrets are only for signing.
   */
  static async enabledFor(executor: SqlExecutor, topics: readonly string[]): Promise<Array<Subscription & SigningSecrets>> {
    return enabledSubscriptions(await selectSql<object>(executor, SELECT_SUBSCRIPTIONS_FOR_TOPICS, [firstWords(topics)]));
  }
}

/** The distinct first words of `topics`, the parameter of SELECT_SUBSCRIPTIONS_FOR_TOPICS. */
export function firstWords(topics: readonly string[]): string[] {
  return [...new Set(topics.map(firstWord))];
}

/** The answer of a read of enabled subscriptions (`SUBSCRIPTION_ROW`), decoded (for transactions that send it with other statements). */
export function enabledSubscriptions(rows: unknown): Array<Subscription & SigningSecrets> {
  return (rows as object[]).map((r) => withSecrets(SUBSCRIPTION_ROW.decode(r)));
}

/** A subscription with what signing its deliveries needs. */
export function withSecrets(row: SubscriptionRow): Subscription & SigningSecrets {
  return { ...toSubscription(row), secret: row.secret ?? '', previousSecret: row.previousSecret, previousSecretExpiresAt: row.previousSecretExpiresAt };
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
    ordering: row.ordering as SubscriptionOrdering,
    disabledReason: row.disabledReason,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}
