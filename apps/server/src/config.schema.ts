import { Type, type SchemaOptions, type Static, type TSchema } from '@sinclair/typebox';
import { CHECK_POLICY_LIMITS, DEFAULT_CHECK_POLICY } from '@herald/domain';

/**
 * Herald's environment, one entry per variable: its type, bounds, default and meaning. The
 * parser (config.ts) and the configuration table (npm run config:doc) are both derived from it.
 *
 * Besides JSON Schema, a variable may carry these keywords (config.ts teaches them to Ajv):
 * - `protocols`: a URL's accepted schemes, e.g. `['redis:', 'rediss:']`;
 * - `mustBe`: what a valid value looks like, in words, for the error message and the table;
 * - `reveal`: how much of a wrong value an error may show (a key or secret: nothing);
 * - `note`: a reason added to the error message;
 * - `tracingOnly`: read, and so checked, only when tracing is on.
 */
export const ANNOTATIONS = ['mustBe', 'reveal', 'note', 'tracingOnly'] as const;

export type Reveal = 'value' | 'redacted' | 'never';

interface Extra extends SchemaOptions {
  description: string;
  mustBe?: string;
  reveal?: Reveal;
  note?: string;
  tracingOnly?: boolean;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const SECOND = 1_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MIB = 1_048_576;

/** A check-back signing secret: HERALD_CHECK_SECRET, and a tenant's own in the keys file. */
export const CHECK_SECRET = /^whsec_[A-Za-z0-9+/]{32,}=*$/;

function integer(min: number, max: number, fallback: number, options: Extra) {
  return Type.Integer({ minimum: min, maximum: max, default: fallback, ...options });
}

function flag(fallback: boolean, options: Extra) {
  return Type.Boolean({ default: fallback, ...options });
}

function oneOf<const T extends readonly string[]>(values: T, options: Extra) {
  // A plain `enum` rather than TypeBox's anyOf of literals: one error per bad value, not one per choice.
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

function url(protocols: string[], options: Extra) {
  return Type.String({ format: 'url', protocols, ...options });
}

function text(pattern: RegExp, mustBe: string, options: Extra) {
  return Type.String({ pattern: pattern.source, mustBe, ...options });
}

const checkLimits = CHECK_POLICY_LIMITS;

export const EnvSchema = Type.Object(
  {
    PORT: integer(0, 65535, 3000, { description: 'HTTP port' }),
    HOST: Type.String({ default: '0.0.0.0', mustBe: 'a host name or IP address', description: 'address the HTTP server listens on' }),
    DATABASE_URL: url(['mysql:'], {
      default: 'mysql://root@127.0.0.1:3306/herald',
      reveal: 'never',
      description: 'MySQL 8 or MariaDB ≥ 10.6; the database is created if missing and migrated at start-up under a lock (or alone: `npm run migrate`)',
    }),
    HERALD_DB_POOL_SIZE: integer(1, 1000, 20, { description: 'MySQL connections per process' }),
    REDIS_URL: url(['redis:', 'rediss:'], { default: 'redis://127.0.0.1:6379', reveal: 'never', description: 'Redis for BullMQ: scheduling only, MySQL holds the truth' }),
    AMQP_URL: url(['amqp:', 'amqps:'], { default: 'amqp://guest:guest@127.0.0.1:5672', reveal: 'never', description: 'RabbitMQ, for rabbitmq subscriptions' }),
    HERALD_API_KEYS: Type.Optional(
      Type.String({
        reveal: 'never',
        mustBe: 'comma-separated `name:role:token` entries',
        description:
          'API keys for development; role `admin`, `viewer` or `producer` (a producer\'s tenant is its name, so 1–64 characters of a-z 0-9 _ -), token at least 16 characters without spaces. This or HERALD_API_KEYS_FILE is required unless HERALD_INSECURE_NO_AUTH=true',
      }),
    ),
    HERALD_API_KEYS_FILE: Type.Optional(
      Type.String({
        minLength: 1,
        mustBe: 'a file path',
        description:
          'a JSON file of API keys `{ "keys": [ { "name", "role", "tenant", "topics", "token" | "tokenSha256", "checkSecret" } ] }`, re-read within seconds when it changes (a removed key stops working within 10 s); an invalid file keeps the last good keys. May be used with HERALD_API_KEYS',
      }),
    ),
    HERALD_INSECURE_NO_AUTH: flag(false, { description: '`true` runs without authentication, every caller being admin: local development only, and refused together with HERALD_API_KEYS' }),
    HERALD_QUEUE_PREFIX: text(/^[A-Za-z0-9_-]{1,64}$/, '1–64 characters of A-Z a-z 0-9 _ -', {
      default: 'herald',
      description: 'BullMQ key prefix, so several instances or test runs can share one Redis',
    }),
    HERALD_ALLOW_PRIVATE_URLS: flag(false, { description: 'allow check-back and webhook URLs on loopback and private networks (development and tests)' }),
    HERALD_ROLE: oneOf(['api', 'worker', 'all'], { default: 'all', description: '`api` serves the HTTP API; `worker` runs deliveries, checks, the reconciler and the purger and serves only health, readiness and metrics; `all` does both' }),
    HERALD_MAX_BODY_BYTES: integer(1024, 64 * MIB, MIB, { description: 'request body limit; a larger body is refused with 413' }),
    HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC: integer(1, 100_000, 50, { description: 'subscriptions one topic pattern may have, as each adds a delivery to every matching message; beyond it a create, or a PATCH moving one there, is 409' }),
    HERALD_REQUEST_TIMEOUT_MS: integer(SECOND, 600_000, 30_000, { description: 'a request whose body has not fully arrived by then is answered 408 and its connection closed' }),
    HERALD_SHUTDOWN_TIMEOUT_MS: integer(SECOND, 600_000, 25_000, { description: 'deadline for draining on SIGTERM or SIGINT; past it the process exits with 1' }),
    HERALD_LOG_LEVEL: oneOf(LOG_LEVELS, { default: 'info', description: 'pino log level; logs are JSON lines on stdout' }),
    HERALD_CHECK_AFTER_MS: integer(checkLimits.checkAfterMs.min, checkLimits.checkAfterMs.max, DEFAULT_CHECK_POLICY.checkAfterMs, {
      description: 'default wait after prepare before the first check-back; a message may set its own',
    }),
    HERALD_CHECK_INTERVAL_MS: integer(checkLimits.checkIntervalMs.min, checkLimits.checkIntervalMs.max, DEFAULT_CHECK_POLICY.checkIntervalMs, {
      description: 'default wait after an `unknown` answer, doubling with each check; a message may set its own',
    }),
    HERALD_MAX_CHECKS: integer(checkLimits.maxChecks.min, checkLimits.maxChecks.max, DEFAULT_CHECK_POLICY.maxChecks, {
      description: 'default number of check-backs before HERALD_ON_CHECKS_EXHAUSTED applies; a message may set its own',
    }),
    HERALD_ON_CHECKS_EXHAUSTED: oneOf(['rollback', 'hold'], {
      default: DEFAULT_CHECK_POLICY.onChecksExhausted,
      description: 'default outcome once the checks are spent: cancel the message, or hold it for an operator',
    }),
    HERALD_RATE_LIMIT_PER_MINUTE: integer(0, 100_000_000, 60_000, { description: 'requests per minute per bearer token, counted in Redis across replicas (429 beyond it); `0` turns it off' }),
    HERALD_UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE: integer(0, 100_000_000, 60, { description: 'requests without a valid token per minute per client address (429 beyond it); `0` turns it off' }),
    HERALD_MAX_EVENT_LOOP_DELAY_MS: integer(0, 60_000, SECOND, { description: 'event-loop lag above which the API sheds requests with 503; `0` turns it off' }),
    HERALD_PRESSURE_SAMPLE_INTERVAL_MS: integer(10, 60_000, 500, { description: 'how often the event-loop lag is sampled' }),
    HERALD_CHECK_SECRET: Type.Optional(
      text(CHECK_SECRET, 'whsec_ followed by at least 24 random bytes in base64 (e.g. whsec_$(openssl rand -base64 32))', {
        reveal: 'never',
        description: 'the secret check-back calls are signed with, the same on every replica so producers can verify them; unset, each process makes up its own (development only)',
      }),
    ),
    HERALD_CHECK_TIMEOUT_MS: integer(100, 120_000, 10 * SECOND, { description: 'timeout of one check-back call' }),
    HERALD_CHECK_SWEEP_INTERVAL_MS: integer(50, 600_000, SECOND, { description: 'how often due checks are claimed, once per interval across all replicas' }),
    HERALD_CHECK_INTERVAL_CAP_MS: integer(100, 24 * HOUR, 600_000, { description: 'longest wait between two checks of one message' }),
    HERALD_CHECK_CONCURRENCY: integer(1, 1000, 16, { description: 'check-back calls a worker process makes at once' }),
    HERALD_DELIVERY_CONCURRENCY: integer(1, 1000, 128, { description: 'delivery jobs a worker process runs at once' }),
    HERALD_INLINE_DELIVERIES: integer(0, 10_000, 512, {
      description: 'deliveries due now that the process which committed them runs at once itself, beside its queued jobs; `0` sends all of them through the queue',
    }),
    HERALD_WEBHOOK_TIMEOUT_MS: integer(100, 120_000, 10 * SECOND, { description: 'timeout of one webhook attempt when the subscription sets none' }),
    HERALD_AMQP_CONFIRM_TIMEOUT_MS: integer(100, 120_000, 10 * SECOND, { description: 'wait for the broker to confirm a publish before the attempt fails' }),
    HERALD_RECONCILE_INTERVAL_MS: integer(50, 600_000, 5 * SECOND, { description: 'how often the reconciler looks in MySQL for deliveries the queue lost' }),
    HERALD_RECONCILE_GRACE_MS: integer(0, 600_000, 2 * SECOND, { description: 'how overdue a delivery must be before the reconciler enqueues it again' }),
    HERALD_RETENTION_DELIVERED_MS: integer(0, 3650 * DAY, 7 * DAY, {
      description: 'how long a `delivered` message (its deliveries, attempts and check calls) is kept after its last delivery; then it is purged, answers 404 and its id may be used again. `0` keeps them forever',
    }),
    HERALD_RETENTION_CANCELLED_MS: integer(0, 3650 * DAY, 7 * DAY, { description: 'how long a `cancelled` message is kept after its cancellation; `0` keeps them forever' }),
    HERALD_RETENTION_FAILED_MS: integer(0, 3650 * DAY, 0, {
      description: 'how long a `failed` message is kept after its last delivery finished (never while one is pending); `0`, the default, keeps them for a person to look at',
    }),
    HERALD_PURGE_INTERVAL_MS: integer(100, DAY, 60 * SECOND, { description: 'how often each worker process purges the messages whose retention ran out, in batches until none is left' }),
    HERALD_PURGE_MAX_PER_SECOND: integer(0, 1_000_000, 2_000, {
      description:
        'messages (with their deliveries, attempts and check calls) each worker process purges per second at most, so a large backlog (a first purge) is removed evenly rather than flat out; keep it at 3 × your peak message rate or more. `0`: no cap',
    }),
    HERALD_TRACING: Type.Optional(
      oneOf(['otlp', 'off'], {
        description: '`otlp` exports OpenTelemetry traces over OTLP/HTTP (JSON); `off` records none. Unset: on when an OTLP endpoint below is set',
      }),
    ),
    OTEL_SDK_DISABLED: flag(false, { description: '`true` turns tracing off, as in any OpenTelemetry SDK' }),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Type.Optional(
      url(['http:', 'https:'], {
        reveal: 'redacted',
        note: 'OTLP over HTTP',
        tracingOnly: true,
        description: 'the collector\'s traces URL, used as it is; with neither endpoint set, `http://localhost:4318/v1/traces`',
      }),
    ),
    OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(
      url(['http:', 'https:'], {
        reveal: 'redacted',
        note: 'OTLP over HTTP',
        tracingOnly: true,
        description: 'the collector\'s base URL, to which `/v1/traces` is added; the variable above wins',
      }),
    ),
    OTEL_SERVICE_NAME: text(/^[\x21-\x7e]{1,128}$/, '1–128 printable ASCII characters without spaces', {
      default: 'herald',
      tracingOnly: true,
      description: 'the `service.name` of Herald\'s spans',
    }),
    OTEL_BSP_SCHEDULE_DELAY: integer(1, 600_000, 5 * SECOND, { tracingOnly: true, description: 'milliseconds between two batches of spans' }),
  },
  { additionalProperties: false },
);

export type EnvValues = Static<typeof EnvSchema>;
export type EnvName = keyof typeof EnvSchema.properties;

/** A variable's schema as the parser and the table read it: TypeBox's fields plus Herald's keywords. */
export type EnvVariable = TSchema & {
  type?: string;
  enum?: string[];
  minimum?: number;
  maximum?: number;
  protocols?: string[];
  mustBe?: string;
  reveal?: Reveal;
  note?: string;
  tracingOnly?: boolean;
  description?: string;
};

export function envVariables(): [EnvName, EnvVariable][] {
  return Object.entries(EnvSchema.properties) as [EnvName, EnvVariable][];
}

/** The markdown table of every variable: name, default, what it accepts and what it does. */
export function renderEnvTable(): string {
  const rows = envVariables().map(([name, variable]) => {
    const fallback = variable.default === undefined ? '—' : `\`${String(variable.default)}\``;
    const meaning = `${variable.description ?? ''}${variable.tracingOnly ? ' (read only when tracing is on)' : ''}`;
    return `| \`${name}\` | ${fallback} | ${accepts(variable)} | ${meaning.replace(/\|/g, '\\|')} |`;
  });
  return ['| variable | default | accepts | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

function accepts(variable: EnvVariable): string {
  if (variable.type === 'integer') return `integer ${variable.minimum}–${variable.maximum}`;
  if (variable.type === 'boolean') return '`true` or `false`';
  if (variable.enum) return variable.enum.map((value) => `\`${value}\``).join(', ');
  if (variable.protocols) return `${variable.protocols.map((p) => `\`${p}//\``).join(' or ')} URL`;
  if (variable.mustBe) return variable.mustBe.replace(/ \(e\.g\. .*\)$/, '');
  return 'text';
}
