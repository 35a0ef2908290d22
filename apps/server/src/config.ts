import { Ajv, type ErrorObject } from 'ajv';
import envSchema from 'env-schema';
import { type Static, type TObject, Type } from '@sinclair/typebox';
import { DEFAULT_TENANT, TENANT_NAME, type CheckPolicy } from '@herald/domain';
import { ANNOTATIONS, CHECK_SECRET, EnvSchema, envVariables, type EnvValues, type EnvVariable } from './config.schema';

export type Role = 'admin' | 'viewer' | 'producer';
export type ProcessRole = EnvValues['HERALD_ROLE'];

export interface ApiKey {
  name: string;
  role: Role;
  /** A producer's tenant is its name; an admin's prepares belong to `default`. */
  tenant: string;
  token: string;
}

export { CHECK_SECRET };

/** Key names, in HERALD_API_KEYS and in the keys file. */
export const KEY_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** OpenTelemetry tracing: spans exported over OTLP/HTTP (JSON). Absent = tracing off. */
export interface TracingConfig {
  /** The full OTLP traces URL, e.g. http://collector:4318/v1/traces. */
  endpoint: string;
  serviceName: string;
  /** How often finished spans are sent in a batch (OTEL_BSP_SCHEDULE_DELAY). */
  scheduleDelayMs: number;
}

/** The configuration the app reads: the validated environment (config.schema.ts), arranged by concern. */
export type Config = ReturnType<typeof arrange>;

/** A configuration mistake; the message names the variable, and the process stops. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

export const MIN_TOKEN_LENGTH = 16;

/** Parses the environment once at start-up. Throws ConfigError naming every wrong variable. */
export function parseConfig(env: Env): Config {
  const data = decode(env, EnvSchema);
  const tracingOn = tracingWanted(data);
  // Tracing variables are standard OpenTelemetry names other software may set; unread, they are not judged.
  if (!tracingOn) for (const [name, variable] of envVariables()) if (variable.tracingOnly) delete data[name];
  const values = validate(EnvSchema, data);

  const apiKeys = parseApiKeys(values.HERALD_API_KEYS);
  const authDisabled = values.HERALD_INSECURE_NO_AUTH;
  const keysFile = values.HERALD_API_KEYS_FILE ?? null;
  if (authDisabled && (apiKeys.length > 0 || keysFile)) {
    throw new ConfigError('HERALD_INSECURE_NO_AUTH=true with HERALD_API_KEYS or HERALD_API_KEYS_FILE set would silently ignore the keys; set one or the other');
  }
  if (apiKeys.length === 0 && !keysFile && !authDisabled) {
    throw new ConfigError(
      'HERALD_API_KEYS is empty and HERALD_API_KEYS_FILE unset: set HERALD_API_KEYS_FILE to a keys file, or HERALD_API_KEYS to name:role:token entries (role admin, viewer or producer), ' +
        'or set HERALD_INSECURE_NO_AUTH=true to run without authentication for local development only',
    );
  }
  if (values.HERALD_TRACING === 'otlp' && values.OTEL_SDK_DISABLED) throw new ConfigError('HERALD_TRACING=otlp with OTEL_SDK_DISABLED=true: set one or the other');
  return arrange(values, apiKeys, tracingOn ? tracing(values) : null);
}

/**
 * What `main.js migrate` needs: only the database. A migrations Job or init container then runs
 * without the API keys and secrets the serving process requires.
 */
export function parseMigrationConfig(env: Env): Pick<Config, 'databaseUrl' | 'logLevel'> {
  const values = validate(MigrationEnvSchema, decode(env, MigrationEnvSchema));
  return { databaseUrl: values.DATABASE_URL, logLevel: values.HERALD_LOG_LEVEL };
}

const MigrationEnvSchema = Type.Pick(EnvSchema, ['DATABASE_URL', 'HERALD_LOG_LEVEL'], { additionalProperties: false });

function arrange(env: EnvValues, apiKeys: ApiKey[], tracing: TracingConfig | null) {
  return {
    port: env.PORT,
    host: env.HOST,
    databaseUrl: env.DATABASE_URL,
    dbPoolSize: env.HERALD_DB_POOL_SIZE,
    redisUrl: env.REDIS_URL,
    amqpUrl: env.AMQP_URL,
    apiKeys,
    /** HERALD_API_KEYS_FILE: more keys, re-read when the file changes. */
    apiKeysFile: env.HERALD_API_KEYS_FILE ?? null,
    /** Only with HERALD_INSECURE_NO_AUTH=true: every request is treated as admin. */
    authDisabled: env.HERALD_INSECURE_NO_AUTH,
    queuePrefix: env.HERALD_QUEUE_PREFIX,
    allowPrivateUrls: env.HERALD_ALLOW_PRIVATE_URLS,
    role: env.HERALD_ROLE,
    maxBodyBytes: env.HERALD_MAX_BODY_BYTES,
    /** Subscriptions one topic pattern may have (abuse limit: each adds a delivery per message). */
    maxSubscriptionsPerTopic: env.HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC,
    requestTimeoutMs: env.HERALD_REQUEST_TIMEOUT_MS,
    shutdownTimeoutMs: env.HERALD_SHUTDOWN_TIMEOUT_MS,
    logLevel: env.HERALD_LOG_LEVEL,
    checkDefaults: {
      checkAfterMs: env.HERALD_CHECK_AFTER_MS,
      checkIntervalMs: env.HERALD_CHECK_INTERVAL_MS,
      maxChecks: env.HERALD_MAX_CHECKS,
      onChecksExhausted: env.HERALD_ON_CHECKS_EXHAUSTED,
    } satisfies CheckPolicy as CheckPolicy,
    limits: {
      ratePerMinute: env.HERALD_RATE_LIMIT_PER_MINUTE,
      unauthenticatedPerMinute: env.HERALD_UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE,
      maxEventLoopDelayMs: env.HERALD_MAX_EVENT_LOOP_DELAY_MS,
      sampleIntervalMs: env.HERALD_PRESSURE_SAMPLE_INTERVAL_MS,
    },
    checks: {
      /** Signs check calls; null means a random per-process secret (development only). */
      secret: env.HERALD_CHECK_SECRET ?? null,
      timeoutMs: env.HERALD_CHECK_TIMEOUT_MS,
      sweepIntervalMs: env.HERALD_CHECK_SWEEP_INTERVAL_MS,
      intervalCapMs: env.HERALD_CHECK_INTERVAL_CAP_MS,
      concurrency: env.HERALD_CHECK_CONCURRENCY,
    },
    delivery: {
      concurrency: env.HERALD_DELIVERY_CONCURRENCY,
      /** Deliveries due now that run at once in the process that committed them (0: none inline). */
      inlineLimit: env.HERALD_INLINE_DELIVERIES,
      webhookTimeoutMs: env.HERALD_WEBHOOK_TIMEOUT_MS,
      amqpConfirmTimeoutMs: env.HERALD_AMQP_CONFIRM_TIMEOUT_MS,
      reconcileIntervalMs: env.HERALD_RECONCILE_INTERVAL_MS,
      reconcileGraceMs: env.HERALD_RECONCILE_GRACE_MS,
    },
    /** How long each terminal status is kept (0: forever), how often the purger runs and how fast it may go. */
    retention: {
      delivered: env.HERALD_RETENTION_DELIVERED_MS,
      cancelled: env.HERALD_RETENTION_CANCELLED_MS,
      failed: env.HERALD_RETENTION_FAILED_MS,
      purgeIntervalMs: env.HERALD_PURGE_INTERVAL_MS,
      purgeMaxPerSecond: env.HERALD_PURGE_MAX_PER_SECOND,
    },
    tracing,
  };
}

/**
 * Off unless asked for: HERALD_TRACING=otlp, or (HERALD_TRACING unset) one of the standard
 * OTLP endpoint variables is set. OTEL_SDK_DISABLED=true turns it off, as in any OpenTelemetry SDK.
 * Decided on the decoded, not yet validated, values: it says which variables get validated.
 */
function tracingWanted(data: Record<string, unknown>): boolean {
  const mode = data.HERALD_TRACING;
  const endpointSet = data.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined || data.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined;
  return mode === 'otlp' || (mode === undefined && data.OTEL_SDK_DISABLED !== true && endpointSet);
}

function tracing(env: EnvValues): TracingConfig {
  // As the OTLP spec says: the signal-specific URL is used as it is; the base URL gets /v1/traces.
  const endpoint =
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    (env.OTEL_EXPORTER_OTLP_ENDPOINT ? `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces` : 'http://localhost:4318/v1/traces');
  return { endpoint, serviceName: env.OTEL_SERVICE_NAME, scheduleDelayMs: env.OTEL_BSP_SCHEDULE_DELAY };
}

function parseApiKeys(raw: string | undefined): ApiKey[] {
  if (!raw) return [];
  const keys = raw.split(',').map((entry, i) => {
    const [name, role, ...rest] = entry.trim().split(':');
    const token = rest.join(':');
    // Never echo the token itself in the error.
    const where = `HERALD_API_KEYS entry ${i + 1}${name ? ` ("${name}")` : ''}`;
    if (!name || !KEY_NAME.test(name)) throw new ConfigError(`${where}: name must be 1–64 characters of A-Z a-z 0-9 _ . - (format name:role:token)`);
    if (role !== 'admin' && role !== 'viewer' && role !== 'producer') throw new ConfigError(`${where}: role must be admin, viewer or producer`);
    // A producer's name is its tenant.
    if (role === 'producer' && !TENANT_NAME.test(name)) throw new ConfigError(`${where}: a producer's name is its tenant: 1–64 characters of a-z 0-9 _ -`);
    if (token.length < MIN_TOKEN_LENGTH) throw new ConfigError(`${where}: token must be at least ${MIN_TOKEN_LENGTH} characters`);
    if (/\s/.test(token)) throw new ConfigError(`${where}: token must not contain whitespace`);
    return { name, role, tenant: role === 'producer' ? name : DEFAULT_TENANT, token } satisfies ApiKey;
  });
  const names = keys.map((k) => k.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new ConfigError(`HERALD_API_KEYS: the name "${dup}" is used twice`);
  const tokens = new Set(keys.map((k) => k.token));
  if (tokens.size !== keys.length) throw new ConfigError('HERALD_API_KEYS: two entries share one token');
  return keys;
}

/**
 * Environment text to the schema's types, strictly: Ajv's own coercion would take "1e6", " 0x10"
 * or "-1" as integers. A value that does not convert stays text, so Ajv reports it with its type.
 * Blank counts as unset, so the default applies.
 */
function decode(env: Env, schema: TObject): Record<string, unknown> {
  const data: Record<string, unknown> = {};
  for (const [name, variable] of Object.entries(schema.properties) as [string, EnvVariable][]) {
    const raw = env[name]?.trim();
    if (raw) data[name] = fromText(raw, variable);
  }
  return data;
}

const TRUE = new Set(['true', '1', 'yes']);
const FALSE = new Set(['false', '0', 'no']);

function fromText(raw: string, variable: EnvVariable): unknown {
  if (variable.type === 'integer') return /^\d+$/.test(raw) ? Number(raw) : raw;
  if (variable.type === 'boolean') {
    const word = raw.toLowerCase();
    return TRUE.has(word) ? true : FALSE.has(word) ? false : raw;
  }
  // OpenTelemetry reads its enumerated variables case-insensitively; Herald's follow suit.
  if (variable.enum) return raw.toLowerCase();
  return raw;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, removeAdditional: true, coerceTypes: false, strict: true });
ajv.addVocabulary([...ANNOTATIONS]);
ajv.addFormat('url', { type: 'string', validate: (value: string) => URL.canParse(value) });
ajv.addKeyword({
  keyword: 'protocols',
  type: 'string',
  schemaType: 'array',
  // An unparsable value is the `url` format's failure; one message per variable is enough.
  validate: (protocols: string[], value: string) => !URL.canParse(value) || protocols.includes(new URL(value).protocol),
});

/** Validates decoded values against the schema, filling defaults; every wrong variable is named. */
function validate<T extends TObject>(schema: T, data: Record<string, unknown>): Static<T> {
  try {
    return envSchema<Static<T>>({ schema, data, env: false, dotenv: false, ajv });
  } catch (error) {
    const errors = (error as { errors?: ErrorObject[] }).errors;
    if (!errors) throw error;
    const problems = new Map<string, string>();
    for (const e of errors) {
      const name = e.instancePath.slice(1);
      const variable = (schema.properties as Record<string, EnvVariable>)[name];
      if (!variable || problems.has(name)) continue;
      problems.set(name, describeProblem(name, variable, e.keyword, data[name]));
    }
    if (problems.size === 0) throw error;
    throw new ConfigError([...problems.values()].join('; '));
  }
}

function describeProblem(name: string, variable: EnvVariable, keyword: string, value: unknown): string {
  const got = shown(variable, value);
  const aside = (...parts: (string | undefined)[]) => {
    const kept = parts.filter(Boolean);
    return kept.length ? ` (${kept.join('; ')})` : '';
  };
  switch (keyword) {
    case 'minimum':
    case 'maximum':
      return `${name} must be between ${variable.minimum} and ${variable.maximum} (got ${String(value)})`;
    case 'type':
      if (variable.type === 'integer') return `${name} must be a whole number from ${variable.minimum} to ${variable.maximum}${aside(got)}`;
      return `${name} must be ${variable.type === 'boolean' ? 'true or false' : `a ${variable.type}`}${aside(got)}`;
    case 'enum':
      return `${name} must be ${alternatives(variable.enum ?? [])}${aside(got)}`;
    case 'format':
      return `${name} is not a valid URL${aside(got)}`;
    case 'protocols':
      return `${name} must start with ${(variable.protocols ?? []).map((p) => `${p}//`).join(' or ')}${aside(variable.note, got)}`;
    case 'pattern':
      return `${name} must be ${variable.mustBe ?? `like ${variable.pattern}`}${aside(got)}`;
    default:
      return `${name} is wrong (${keyword})`;
  }
}

function alternatives(values: string[]): string {
  return values.length === 2 ? `${values[0]} or ${values[1]}` : `one of ${values.join(', ')}`;
}

/** The wrong value as an error message may show it, or undefined when it must not be shown. */
function shown(variable: EnvVariable, value: unknown): string | undefined {
  const reveal = variable.reveal ?? 'value';
  if (reveal === 'never') return undefined;
  const text = String(value);
  return `got "${reveal === 'redacted' ? redactedUrl(text) : text}"`;
}

/**
 * A URL fit for an error message: credentials (`user:token@`) and the query string, where tokens
 * also travel, are replaced. Textual, so it works on values that do not parse as URLs too.
 */
function redactedUrl(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/?#]*@/i, '$1[redacted]@').replace(/[?#].*$/s, (rest) => (rest.startsWith('?') ? '?[redacted]' : ''));
}
