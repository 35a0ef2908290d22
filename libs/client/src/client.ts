import { randomUUID } from 'node:crypto';
import { HeraldApiError, HeraldNetworkError } from './errors';
import { ROUTES, type Operation } from './routes';
import type {
  BlockedKeyPage,
  ListBlockedKeysInput,
  SkipKeyInput,
  SkippedKeyResult,
  BulkRedeliverInput,
  CallerResult,
  DeadCountInput,
  DeadCountResult,
  HeraldAuditPage,
  ListAuditInput,
  MinuteRatesResult,
  StatsResult,
  SubscriptionHealthInput,
  SubscriptionHealthResult,
  HeraldErrorBody,
  CreateSubscriptionInput,
  HeraldDeliveryList,
  HeraldMessage,
  HeraldMessagePage,
  HeraldSubscription,
  HeraldSubscriptionPage,
  ListMessagesInput,
  ListSubscriptionsInput,
  LivenessResult,
  PrepareMessageInput,
  ReadinessResult,
  RedeliverInput,
  RequeuedResult,
  RotatedSecretResult,
  RotateSecretInput,
  UpdateSubscriptionInput,
} from './types';

/** How calls that are safe to repeat are retried. */
export interface RetryOptions {
  /** Attempts in all, the first included (default 5). */
  attempts?: number;
  /** Wait before the first retry; doubles each time, with full jitter (default 100 ms). */
  initialDelayMs?: number;
  /** Cap on one backoff wait (default 2 s). A `Retry-After` from the service is not capped by it. */
  maxDelayMs?: number;
  /**
   * Overall time budget of one call, retries and waits included (default 30 s). A retry whose
   * wait (`Retry-After` or backoff) would end past it is not made: the call fails with the last
   * error instead.
   */
  deadlineMs?: number;
}

/** Options of {@link HeraldClient}. */
export interface HeraldClientOptions {
  /** Where Herald listens, e.g. `http://herald.internal:3000`. */
  baseUrl: string;
  /** A bearer token from `HERALD_API_KEYS` (a producer token, or admin for subscriptions). */
  token?: string;
  /** Per-attempt timeout (default 10 s). */
  timeoutMs?: number;
  retry?: RetryOptions;
  /** A fetch to use instead of the global one (proxies, tests, fault injection). */
  fetch?: typeof fetch;
}

interface CallOptions {
  params?: Record<string, string>;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Repeating the call cannot change the outcome (the service is idempotent for it). */
  idempotent: boolean;
  /** Statuses that are an answer rather than an error (readiness answers 503 with a body). */
  accept?: readonly number[];
  /** A 404 on a retry means an earlier attempt whose answer was lost already did it (DELETE). */
  notFoundAfterRetryIsDone?: boolean;
  text?: boolean;
}

/** A transport failure, or an answer that says "try again": 5xx, 429. */
const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);

/**
 * A typed client for every route of Herald's HTTP API. Prepare with an id, confirm, cancel, get
 * and list are retried on network errors, 429 and 5xx with exponential backoff and jitter: the
 * service answers a repeated call exactly as the first, so a retry never does anything twice.
 * A `Retry-After` (seconds or HTTP date) is waited out in full, within `retry.deadlineMs`.
 * Creating a subscription, rotating a secret and the redeliver routes are not retried.
 */
/**
 * Admin and viewer tokens: the tenant of the message an id names, needed when several tenants
 * use the id (the API answers 409 naming them). A producer's is always its own.
 */
export interface TenantOption {
  tenant?: string;
}

const tenantQuery = (options: TenantOption) => (options.tenant === undefined ? undefined : { tenant: options.tenant });

export class HeraldClient {
  private readonly baseUrl: string;
  private readonly fetch: typeof fetch;
  private readonly timeoutMs: number;
  private readonly retry: Required<RetryOptions>;

  constructor(private readonly options: HeraldClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetch = options.fetch ?? globalThis.fetch;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retry = { attempts: 5, initialDelayMs: 100, maxDelayMs: 2_000, deadlineMs: 30_000, ...options.retry };
  }

  /**
   * Prepares a half message (or publishes directly with `confirm: true`). Without an `id` one is
   * generated here, so a retry after a lost answer finds the same message instead of a second one.
   */
  prepare(input: PrepareMessageInput): Promise<HeraldMessage> {
    const body = { ...input, id: input.id ?? randomUUID() };
    return this.call<HeraldMessage>('prepareMessage', { body, idempotent: true });
  }

  /** Publishes a message directly: stored confirmed, no prepare, no check-back. */
  publish(input: Omit<PrepareMessageInput, 'confirm' | 'checkUrl' | 'checkAfterMs' | 'checkIntervalMs' | 'maxChecks' | 'onChecksExhausted'>): Promise<HeraldMessage> {
    return this.prepare({ ...input, confirm: true });
  }

  /** Confirms (commits) a prepared message. Idempotent; 409 if it was cancelled. */
  confirm(id: string, options: TenantOption = {}): Promise<HeraldMessage> {
    return this.call<HeraldMessage>('confirmMessage', { params: { id }, query: tenantQuery(options), idempotent: true });
  }

  /** Cancels (rolls back) a prepared message. Idempotent; 409 if it was confirmed. */
  cancel(id: string, options: TenantOption = {}): Promise<HeraldMessage> {
    return this.call<HeraldMessage>('cancelMessage', { params: { id }, query: tenantQuery(options), idempotent: true });
  }

  /** A message with its status, checks and deliveries. */
  getMessage(id: string, options: TenantOption = {}): Promise<HeraldMessage> {
    return this.call<HeraldMessage>('getMessage', { params: { id }, query: tenantQuery(options), idempotent: true });
  }

  /** One page of messages, newest first. */
  listMessages(query: ListMessagesInput = {}): Promise<HeraldMessagePage> {
    return this.call<HeraldMessagePage>('listMessages', { query, idempotent: true });
  }

  /** A message's deliveries with every attempt. */
  listDeliveries(id: string, options: TenantOption = {}): Promise<HeraldDeliveryList> {
    return this.call<HeraldDeliveryList>('listMessageDeliveries', { params: { id }, query: tenantQuery(options), idempotent: true });
  }

  /** Replays a message's dead deliveries (admin). Not retried: a repeat would replay twice. */
  redeliverMessage(id: string, body: RedeliverInput = {}, options: TenantOption = {}): Promise<RequeuedResult> {
    return this.call<RequeuedResult>('redeliverMessage', { params: { id }, query: tenantQuery(options), body, idempotent: false });
  }

  /** Creates a subscription (admin). A webhook subscription's answer carries its `whsec_` secret. */
  createSubscription(body: CreateSubscriptionInput): Promise<HeraldSubscription> {
    return this.call<HeraldSubscription>('createSubscription', { body, idempotent: false });
  }

  /** One page of subscriptions (admin). */
  listSubscriptions(query: ListSubscriptionsInput = {}): Promise<HeraldSubscriptionPage> {
    return this.call<HeraldSubscriptionPage>('listSubscriptions', { query, idempotent: true });
  }

  /** A subscription, without its secret (admin). */
  getSubscription(id: string): Promise<HeraldSubscription> {
    return this.call<HeraldSubscription>('getSubscription', { params: { id }, idempotent: true });
  }

  /** Changes a subscription (admin). */
  updateSubscription(id: string, body: UpdateSubscriptionInput): Promise<HeraldSubscription> {
    return this.call<HeraldSubscription>('updateSubscription', { params: { id }, body, idempotent: true });
  }

  /**
   * Deletes a subscription (admin). Retried like the other idempotent calls; a 404 on a retry is
   * taken as success, because the attempt whose 204 was lost is what deleted it. A 404 on the
   * first attempt is still an error.
   */
  async deleteSubscription(id: string): Promise<void> {
    await this.call<null>('deleteSubscription', { params: { id }, idempotent: true, notFoundAfterRetryIsDone: true });
  }

  /** Rotates a webhook subscription's secret (admin); the old one signs too for `graceMs`. */
  rotateSecret(id: string, body: RotateSecretInput = {}): Promise<RotatedSecretResult> {
    return this.call<RotatedSecretResult>('rotateSubscriptionSecret', { params: { id }, body, idempotent: false });
  }

  /** Replays a subscription's dead deliveries that died in [since, until) (admin). */
  redeliverSubscription(id: string, body: BulkRedeliverInput = {}): Promise<RequeuedResult> {
    return this.call<RequeuedResult>('redeliverSubscription', { params: { id }, body, idempotent: false });
  }

  /** How many dead deliveries a subscription redeliver with this range would requeue (admin, viewer). */
  countDeadDeliveries(id: string, query: DeadCountInput = {}): Promise<DeadCountResult> {
    return this.call<DeadCountResult>('countSubscriptionDeadDeliveries', { params: { id }, query, idempotent: true });
  }

  /** The keys an ordered subscription is held up on, each by its dead head (admin, viewer). */
  listBlockedKeys(id: string, query: ListBlockedKeysInput = {}): Promise<BlockedKeyPage> {
    return this.call<BlockedKeyPage>('listBlockedKeys', { params: { id }, query, idempotent: true });
  }

  /**
   * Skips the dead delivery blocking a key of an ordered subscription (admin): it stays dead,
   * the key's next message goes. Not retried: a lost answer's skip may have happened (see the audit log).
   */
  skipBlockedKey(id: string, body: SkipKeyInput): Promise<SkippedKeyResult> {
    return this.call<SkippedKeyResult>('skipBlockedKey', { params: { id }, body, idempotent: false });
  }

  /** The calling key's name and role. */
  whoAmI(): Promise<CallerResult> {
    return this.call<CallerResult>('getCaller', { idempotent: true });
  }

  /** One page of the operator audit log, newest first (admin, viewer). */
  listAudit(query: ListAuditInput = {}): Promise<HeraldAuditPage> {
    return this.call<HeraldAuditPage>('listAudit', { query, idempotent: true });
  }

  /** Counts by state, backlog, table sizes and purge progress (admin, viewer). */
  stats(): Promise<StatsResult> {
    return this.call<StatsResult>('getStats', { idempotent: true });
  }

  /** Per-minute counts of the last hour (admin, viewer). */
  minuteRates(): Promise<MinuteRatesResult> {
    return this.call<MinuteRatesResult>('getMinuteRates', { idempotent: true });
  }

  /** Each subscription's delivered and dead counts over a window (admin, viewer). */
  subscriptionHealth(query: SubscriptionHealthInput = {}): Promise<SubscriptionHealthResult> {
    return this.call<SubscriptionHealthResult>('getSubscriptionHealth', { query, idempotent: true });
  }

  /** `GET /healthz`. */
  liveness(): Promise<LivenessResult> {
    return this.call<LivenessResult>('liveness', { idempotent: true });
  }

  /** `GET /readyz`: answers 503 with the same shape when a backing service is down. */
  readiness(): Promise<ReadinessResult> {
    return this.call<ReadinessResult>('readiness', { idempotent: false, accept: [503] });
  }

  /** `GET /metrics` in Prometheus text. */
  metrics(): Promise<string> {
    return this.call<string>('metrics', { idempotent: true, text: true });
  }

  private async call<T>(operation: Operation, options: CallOptions): Promise<T> {
    const route = ROUTES[operation];
    const url = this.baseUrl + route.path.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(options.params?.[name] ?? ''));
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) search.set(k, String(v));
    const target = search.size > 0 ? `${url}?${search}` : url;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const attempts = options.idempotent ? Math.max(1, this.retry.attempts) : 1;

    const deadline = Date.now() + this.retry.deadlineMs;
    let lastError: unknown;
    let attempt = 0;
    for (;;) {
      attempt++;
      if (attempt > 1) {
        const wait = this.backoff(attempt - 1, lastError);
        // The service asked for more time than the caller allows: fail now rather than later.
        if (Date.now() + wait > deadline) {
          attempt--;
          break;
        }
        await sleep(wait);
      }
      let res: Response;
      try {
        res = await this.fetch(target, {
          method: route.method,
          headers,
          ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        lastError = err;
        if (attempt >= attempts) break;
        continue;
      }
      if (res.ok || options.accept?.includes(res.status)) {
        if (res.status === 204) return null as T;
        return (options.text ? await res.text() : await res.json()) as T;
      }
      if (res.status === 404 && attempt > 1 && options.notFoundAfterRetryIsDone) {
        await res.body?.cancel();
        return null as T;
      }
      const error = new HeraldApiError(res.status, (await res.json().catch(() => undefined)) as HeraldErrorBody | undefined, operation);
      if (!RETRY_STATUSES.has(res.status) || attempt >= attempts) throw error;
      lastError = Object.assign(error, { retryAfter: res.headers.get('retry-after') });
    }
    if (lastError instanceof HeraldApiError) throw lastError;
    throw new HeraldNetworkError(operation, attempt, { cause: lastError });
  }

  private backoff(retry: number, lastError: unknown): number {
    const cap = Math.min(this.retry.maxDelayMs, this.retry.initialDelayMs * 2 ** (retry - 1));
    // Retry-After from a 429/503 is the service saying when: never retry sooner.
    return Math.max(retryAfterMs((lastError as { retryAfter?: string | null } | undefined)?.retryAfter), Math.random() * cap);
  }
}

/** `Retry-After` as milliseconds from now: delay-seconds or an HTTP date; 0 when absent or unreadable. */
function retryAfterMs(value: string | null | undefined, now = Date.now()): number {
  if (!value) return 0;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - now) : 0;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
