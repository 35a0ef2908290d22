import { CHECK_POLICY_LIMITS, DEFAULT_CHECK_POLICY, type CheckPolicy } from '@herald/domain';

export type Role = 'admin' | 'producer';
export type ProcessRole = 'api' | 'worker' | 'all';

export interface ApiKey {
  name: string;
  role: Role;
  token: string;
}

/** OpenTelemetry tracing: spans exported over OTLP/HTTP (JSON). Absent = tracing off. */
export interface TracingConfig {
  /** The full OTLP traces URL, e.g. http://collector:4318/v1/traces. */
  endpoint: string;
  serviceName: string;
  /** How often finished spans are sent in a batch (OTEL_BSP_SCHEDULE_DELAY). */
  scheduleDelayMs: number;
}

export interface Config {
  port: number;
  host: string;
  databaseUrl: string;
  dbPoolSize: number;
  redisUrl: string;
  amqpUrl: string;
  apiKeys: ApiKey[];
  /** Only with HERALD_INSECURE_NO_AUTH=true: every request is treated as admin. */
  authDisabled: boolean;
  queuePrefix: string;
  allowPrivateUrls: boolean;
  role: ProcessRole;
  maxBodyBytes: number;
  /** A request whose body has not fully arrived by then is answered 408 and its connection closed. */
  requestTimeoutMs: number;
  /** Subscriptions one topic pattern may have (abuse limit: each adds a delivery per message). */
  maxSubscriptionsPerTopic: number;
  shutdownTimeoutMs: number;
  logLevel: string;
  checkDefaults: CheckPolicy;
  limits: {
    ratePerMinute: number;
    unauthenticatedPerMinute: number;
    maxEventLoopDelayMs: number;
    sampleIntervalMs: number;
  };
  checks: {
    /** Signs check calls; null means a random per-process secret (development only). */
    secret: string | null;
    timeoutMs: number;
    sweepIntervalMs: number;
    intervalCapMs: number;
    concurrency: number;
  };
  delivery: {
    concurrency: number;
    /** Deliveries due now that run at once in the process that committed them (0: none inline). */
    inlineLimit: number;
    webhookTimeoutMs: number;
    amqpConfirmTimeoutMs: number;
    reconcileIntervalMs: number;
    reconcileGraceMs: number;
  };
  tracing: TracingConfig | null;
}

/** A configuration mistake; the message names the variable, and the process stops. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

const MIN_TOKEN_LENGTH = 16;

/** Parses the environment once at start-up (DESIGN.md section 5). Throws ConfigError on any wrong value. */
export function parseConfig(env: Env): Config {
  const apiKeys = parseApiKeys(env.HERALD_API_KEYS);
  const authDisabled = bool(env, 'HERALD_INSECURE_NO_AUTH', false);
  if (authDisabled && apiKeys.length > 0) {
    throw new ConfigError('HERALD_INSECURE_NO_AUTH=true with HERALD_API_KEYS set would silently ignore the keys; set one or the other');
  }
  if (apiKeys.length === 0 && !authDisabled) {
    throw new ConfigError(
      'HERALD_API_KEYS is empty: set it to name:role:token entries (role admin or producer), ' +
        'or set HERALD_INSECURE_NO_AUTH=true to run without authentication for local development only',
    );
  }
  const limits = CHECK_POLICY_LIMITS;
  return {
    port: int(env, 'PORT', 3000, 0, 65535),
    host: str(env, 'HOST', '0.0.0.0'),
    databaseUrl: url(env, 'DATABASE_URL', 'mysql://root@127.0.0.1:3306/herald', ['mysql:']),
    dbPoolSize: int(env, 'HERALD_DB_POOL_SIZE', 20, 1, 1000),
    redisUrl: url(env, 'REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    amqpUrl: url(env, 'AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672', ['amqp:', 'amqps:']),
    apiKeys,
    authDisabled,
    queuePrefix: match(env, 'HERALD_QUEUE_PREFIX', 'herald', /^[A-Za-z0-9_-]{1,64}$/, '1–64 characters of A-Z a-z 0-9 _ -'),
    allowPrivateUrls: bool(env, 'HERALD_ALLOW_PRIVATE_URLS', false),
    role: oneOf(env, 'HERALD_ROLE', 'all', ['api', 'worker', 'all'] as const),
    maxBodyBytes: int(env, 'HERALD_MAX_BODY_BYTES', 1_048_576, 1024, 64 * 1_048_576),
    requestTimeoutMs: int(env, 'HERALD_REQUEST_TIMEOUT_MS', 30_000, 100, 600_000),
    maxSubscriptionsPerTopic: int(env, 'HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC', 50, 1, 100_000),
    shutdownTimeoutMs: int(env, 'HERALD_SHUTDOWN_TIMEOUT_MS', 25_000, 1_000, 600_000),
    logLevel: oneOf(env, 'HERALD_LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
    checkDefaults: {
      checkAfterMs: int(env, 'HERALD_CHECK_AFTER_MS', DEFAULT_CHECK_POLICY.checkAfterMs, limits.checkAfterMs.min, limits.checkAfterMs.max),
      checkIntervalMs: int(env, 'HERALD_CHECK_INTERVAL_MS', DEFAULT_CHECK_POLICY.checkIntervalMs, limits.checkIntervalMs.min, limits.checkIntervalMs.max),
      maxChecks: int(env, 'HERALD_MAX_CHECKS', DEFAULT_CHECK_POLICY.maxChecks, limits.maxChecks.min, limits.maxChecks.max),
      onChecksExhausted: oneOf(env, 'HERALD_ON_CHECKS_EXHAUSTED', DEFAULT_CHECK_POLICY.onChecksExhausted, ['rollback', 'hold'] as const),
    },
    limits: {
      ratePerMinute: int(env, 'HERALD_RATE_LIMIT_PER_MINUTE', 60_000, 0, 100_000_000),
      unauthenticatedPerMinute: int(env, 'HERALD_UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE', 60, 0, 100_000_000),
      maxEventLoopDelayMs: int(env, 'HERALD_MAX_EVENT_LOOP_DELAY_MS', 1_000, 0, 60_000),
      sampleIntervalMs: int(env, 'HERALD_PRESSURE_SAMPLE_INTERVAL_MS', 500, 10, 60_000),
    },
    checks: {
      secret: checkSecret(env.HERALD_CHECK_SECRET),
      timeoutMs: int(env, 'HERALD_CHECK_TIMEOUT_MS', 10_000, 100, 120_000),
      sweepIntervalMs: int(env, 'HERALD_CHECK_SWEEP_INTERVAL_MS', 1_000, 50, 600_000),
      intervalCapMs: int(env, 'HERALD_CHECK_INTERVAL_CAP_MS', 600_000, 100, 24 * 3600_000),
      concurrency: int(env, 'HERALD_CHECK_CONCURRENCY', 16, 1, 1000),
    },
    delivery: {
      concurrency: int(env, 'HERALD_DELIVERY_CONCURRENCY', 128, 1, 1000),
      inlineLimit: int(env, 'HERALD_INLINE_DELIVERIES', 512, 0, 10_000),
      webhookTimeoutMs: int(env, 'HERALD_WEBHOOK_TIMEOUT_MS', 10_000, 100, 120_000),
      amqpConfirmTimeoutMs: int(env, 'HERALD_AMQP_CONFIRM_TIMEOUT_MS', 10_000, 100, 120_000),
      reconcileIntervalMs: int(env, 'HERALD_RECONCILE_INTERVAL_MS', 5_000, 50, 600_000),
      reconcileGraceMs: int(env, 'HERALD_RECONCILE_GRACE_MS', 2_000, 0, 600_000),
    },
    tracing: parseTracing(env),
  };
}

/**
 * Off unless asked for: HERALD_TRACING=otlp, or (HERALD_TRACING unset) one of the standard
 * OTLP endpoint variables is set. OTEL_SDK_DISABLED=true turns it off, as in any OpenTelemetry SDK.
 */
function parseTracing(env: Env): TracingConfig | null {
  const mode = env.HERALD_TRACING?.trim().toLowerCase() || undefined;
  if (mode !== undefined && mode !== 'otlp' && mode !== 'off') throw new ConfigError(`HERALD_TRACING must be otlp or off (got "${mode}")`);
  const disabled = bool(env, 'OTEL_SDK_DISABLED', false);
  if (mode === 'otlp' && disabled) throw new ConfigError('HERALD_TRACING=otlp with OTEL_SDK_DISABLED=true: set one or the other');
  const tracesEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const baseEndpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const on = mode === 'otlp' || (mode === undefined && !disabled && Boolean(tracesEndpoint || baseEndpoint));
  if (!on) return null;
  // As the OTLP spec says: the signal-specific URL is used as it is; the base URL gets /v1/traces.
  const endpoint = tracesEndpoint
    ? httpUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', tracesEndpoint)
    : baseEndpoint
      ? `${httpUrl('OTEL_EXPORTER_OTLP_ENDPOINT', baseEndpoint).replace(/\/+$/, '')}/v1/traces`
      : 'http://localhost:4318/v1/traces';
  return {
    endpoint,
    serviceName: match(env, 'OTEL_SERVICE_NAME', 'herald', /^[\x21-\x7e]{1,128}$/, '1–128 printable ASCII characters without spaces'),
    scheduleDelayMs: int(env, 'OTEL_BSP_SCHEDULE_DELAY', 5_000, 1, 600_000),
  };
}

function httpUrl(name: string, value: string): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a valid URL (got "${redactedUrl(value)}")`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ConfigError(`${name} must start with http:// or https:// (OTLP over HTTP; got "${redactedUrl(value)}")`);
  return value;
}

/**
 * A URL fit for an error message: credentials (`user:token@`) and the query string, where tokens
 * also travel, are replaced. Textual, so it works on values that do not parse as URLs too.
 */
function redactedUrl(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/?#]*@/i, '$1[redacted]@').replace(/[?#].*$/s, (rest) => (rest.startsWith('?') ? '?[redacted]' : ''));
}

/**
 * What `main.js migrate` needs: only the database. A migrations Job or init container then runs
 * without the API keys and secrets the serving process requires.
 */
export function parseMigrationConfig(env: Env): Pick<Config, 'databaseUrl' | 'logLevel'> {
  return {
    databaseUrl: url(env, 'DATABASE_URL', 'mysql://root@127.0.0.1:3306/herald', ['mysql:']),
    logLevel: oneOf(env, 'HERALD_LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
  };
}

function parseApiKeys(raw: string | undefined): ApiKey[] {
  if (!raw?.trim()) return [];
  const keys = raw.split(',').map((entry, i) => {
    const [name, role, ...rest] = entry.trim().split(':');
    const token = rest.join(':');
    // Never echo the token itself in the error.
    const where = `HERALD_API_KEYS entry ${i + 1}${name ? ` ("${name}")` : ''}`;
    if (!name || !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new ConfigError(`${where}: name must be 1–64 characters of A-Z a-z 0-9 _ . - (format name:role:token)`);
    if (role !== 'admin' && role !== 'producer') throw new ConfigError(`${where}: role must be admin or producer`);
    if (token.length < MIN_TOKEN_LENGTH) throw new ConfigError(`${where}: token must be at least ${MIN_TOKEN_LENGTH} characters`);
    if (/\s/.test(token)) throw new ConfigError(`${where}: token must not contain whitespace`);
    return { name, role, token } satisfies ApiKey;
  });
  const names = keys.map((k) => k.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new ConfigError(`HERALD_API_KEYS: the name "${dup}" is used twice`);
  const tokens = new Set(keys.map((k) => k.token));
  if (tokens.size !== keys.length) throw new ConfigError('HERALD_API_KEYS: two entries share one token');
  return keys;
}

function checkSecret(raw: string | undefined): string | null {
  const value = raw?.trim();
  if (!value) return null;
  const key = value.startsWith('whsec_') ? Buffer.from(value.slice(6), 'base64') : undefined;
  if (!key || key.length < 24 || !/^whsec_[A-Za-z0-9+/]+=*$/.test(value)) {
    throw new ConfigError('HERALD_CHECK_SECRET must be whsec_ followed by at least 24 random bytes in base64 (e.g. whsec_$(openssl rand -base64 32))');
  }
  return value;
}

function str(env: Env, name: string, fallback: string): string {
  const value = env[name]?.trim();
  return value ? value : fallback;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be a whole number (got "${raw}")`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max} (got ${value})`);
  return value;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (!raw) return fallback;
  if (['true', '1', 'yes'].includes(raw)) return true;
  if (['false', '0', 'no'].includes(raw)) return false;
  throw new ConfigError(`${name} must be true or false (got "${raw}")`);
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')} (got "${raw}")`);
  return raw as T;
}

function match(env: Env, name: string, fallback: string, pattern: RegExp, description: string): string {
  const value = str(env, name, fallback);
  if (!pattern.test(value)) throw new ConfigError(`${name} must be ${description} (got "${value}")`);
  return value;
}

function url(env: Env, name: string, fallback: string, protocols: string[]): string {
  const value = str(env, name, fallback);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a valid URL`);
  }
  if (!protocols.includes(parsed.protocol)) throw new ConfigError(`${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}`);
  return value;
}
