import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, parseMigrationConfig } from './config';
import { envVariables, renderEnvTable } from './config.schema';

const KEYS = 'ops:admin:0123456789abcdef0123,orders:producer:fedcba9876543210fedc';

describe('parseConfig', () => {
  it('applies the documented defaults (DESIGN.md section 5)', () => {
    const config = parseConfig({ HERALD_API_KEYS: KEYS });
    expect(config).toMatchObject({
      port: 3000,
      host: '0.0.0.0',
      databaseUrl: 'mysql://root@127.0.0.1:3306/herald',
      redisUrl: 'redis://127.0.0.1:6379',
      amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
      queuePrefix: 'herald',
      allowPrivateUrls: false,
      role: 'all',
      maxBodyBytes: 1_048_576,
      maxSubscriptionsPerTopic: 50,
      authDisabled: false,
      checkDefaults: { checkAfterMs: 30_000, checkIntervalMs: 10_000, maxChecks: 15, onChecksExhausted: 'rollback' },
      delivery: { concurrency: 128, inlineLimit: 512 },
    });
    expect(parseConfig({ HERALD_API_KEYS: KEYS, HERALD_INLINE_DELIVERIES: '0' }).delivery.inlineLimit).toBe(0);
    expect(config.apiKeys).toEqual([
      { name: 'ops', role: 'admin', tenant: 'default', token: '0123456789abcdef0123' },
      { name: 'orders', role: 'producer', tenant: 'orders', token: 'fedcba9876543210fedc' },
    ]);
  });

  it('keeps colons inside a token', () => {
    expect(parseConfig({ HERALD_API_KEYS: 'a:admin:abc:def:ghi:jkl:mnop:qrs' }).apiKeys[0]?.token).toBe('abc:def:ghi:jkl:mnop:qrs');
  });

  it.each([
    [{}, /HERALD_API_KEYS is empty/],
    [{ HERALD_API_KEYS: 'ops:root:0123456789abcdef0123' }, /entry 1 \("ops"\): role must be admin, viewer or producer/],
    [{ HERALD_API_KEYS: 'ops:admin:short' }, /at least 16 characters/],
    [{ HERALD_API_KEYS: ':admin:0123456789abcdef0123' }, /name must be/],
    [{ HERALD_API_KEYS: `${KEYS},ops:producer:zzzzzzzzzzzzzzzzzzzz` }, /"ops" is used twice/],
    [{ HERALD_API_KEYS: KEYS, PORT: '70000' }, /^PORT must be between 0 and 65535/],
    [{ HERALD_API_KEYS: KEYS, PORT: '-1' }, /^PORT must be a whole number/],
    [{ HERALD_API_KEYS: KEYS, HERALD_ROLE: 'both' }, /^HERALD_ROLE must be one of api, worker, all/],
    [{ HERALD_API_KEYS: KEYS, HERALD_ALLOW_PRIVATE_URLS: 'maybe' }, /^HERALD_ALLOW_PRIVATE_URLS must be true or false/],
    [{ HERALD_API_KEYS: KEYS, DATABASE_URL: 'postgres://h/db' }, /^DATABASE_URL must start with mysql:\/\//],
    [{ HERALD_API_KEYS: KEYS, REDIS_URL: 'not a url' }, /^REDIS_URL is not a valid URL/],
    [{ HERALD_API_KEYS: KEYS, HERALD_QUEUE_PREFIX: 'has space' }, /^HERALD_QUEUE_PREFIX must be/],
    [{ HERALD_API_KEYS: KEYS, HERALD_MAX_BODY_BYTES: '1e6' }, /^HERALD_MAX_BODY_BYTES must be a whole number/],
    [{ HERALD_API_KEYS: KEYS, HERALD_MAX_CHECKS: '0' }, /^HERALD_MAX_CHECKS must be between 1 and 100/],
    [{ HERALD_API_KEYS: KEYS, HERALD_TRACING: 'jaeger' }, /^HERALD_TRACING must be otlp or off \(got "jaeger"\)/],
    [{ HERALD_API_KEYS: KEYS, HERALD_TRACING: 'otlp', OTEL_SDK_DISABLED: 'true' }, /^HERALD_TRACING=otlp with OTEL_SDK_DISABLED=true/],
    [{ HERALD_API_KEYS: KEYS, OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://collector:4317' }, /^OTEL_EXPORTER_OTLP_ENDPOINT must start with http:\/\/ or https:\/\//],
    [{ HERALD_API_KEYS: KEYS, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'collector' }, /^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is not a valid URL/],
    [{ HERALD_API_KEYS: KEYS, HERALD_TRACING: 'otlp', OTEL_SERVICE_NAME: 'has space' }, /^OTEL_SERVICE_NAME must be/],
    [{ HERALD_API_KEYS: KEYS, HERALD_TRACING: 'otlp', OTEL_BSP_SCHEDULE_DELAY: '0' }, /^OTEL_BSP_SCHEDULE_DELAY must be between 1 and 600000/],
    [{ HERALD_API_KEYS: KEYS, HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC: '0' }, /^HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC must be between 1 and 100000/],
  ])('refuses %j, naming the variable', (env, message) => {
    expect(() => parseConfig(env)).toThrow(ConfigError);
    expect(() => parseConfig(env)).toThrow(message);
  });

  it('never puts a token into an error message', () => {
    try {
      parseConfig({ HERALD_API_KEYS: 'ops:superuser:this-token-is-secret-1234' });
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).not.toContain('this-token-is-secret');
    }
  });

  it.each([
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'grpc://collector-user:otlp-secret-token@collector:4317?api_key=query-secret-key', 'must start with http:// or https:// (OTLP over HTTP; got "grpc://[redacted]@collector:4317?[redacted]")'],
    ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'collector-user:otlp-secret-token@collector?api_key=query-secret-key', 'must start with http:// or https:// (OTLP over HTTP; got "[redacted]@collector?[redacted]")'],
    ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'http://collector-user:otlp-secret-token@[collector:4318/v1/traces?api_key=query-secret-key', 'is not a valid URL (got "http://[redacted]@[collector:4318/v1/traces?[redacted]")'],
  ])('never puts the credentials or query of a bad %s into the error message', (name, value, expected) => {
    let message = '';
    try {
      parseConfig({ HERALD_API_KEYS: KEYS, [name]: value });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toBe(`${name} ${expected}`);
    expect(message).not.toContain('query-secret-key');
    expect(message).not.toContain('otlp-secret-token');
  });

  it('traces only when asked: HERALD_TRACING=otlp or a standard OTLP endpoint variable', () => {
    expect(parseConfig({ HERALD_API_KEYS: KEYS }).tracing).toBeNull();
    expect(parseConfig({ HERALD_API_KEYS: KEYS, HERALD_TRACING: 'otlp' }).tracing).toEqual({
      endpoint: 'http://localhost:4318/v1/traces',
      serviceName: 'herald',
      scheduleDelayMs: 5_000,
    });
    // The base endpoint gets the signal path; the traces endpoint is used as it is.
    expect(parseConfig({ HERALD_API_KEYS: KEYS, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).tracing?.endpoint).toBe('http://collector:4318/v1/traces');
    expect(parseConfig({ HERALD_API_KEYS: KEYS, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://b/otlp/traces', OTEL_SERVICE_NAME: 'herald-eu' }).tracing)
      .toMatchObject({ endpoint: 'https://b/otlp/traces', serviceName: 'herald-eu' });
    expect(parseConfig({ HERALD_API_KEYS: KEYS, HERALD_TRACING: 'off', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing).toBeNull();
    expect(parseConfig({ HERALD_API_KEYS: KEYS, OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing).toBeNull();
  });

  it('runs without keys only when told to explicitly', () => {
    expect(parseConfig({ HERALD_INSECURE_NO_AUTH: 'true' }).authDisabled).toBe(true);
  });

  it('reads HERALD_REQUEST_TIMEOUT_MS as whole milliseconds of at least 1000, 30000 by default', () => {
    expect(parseConfig({ HERALD_API_KEYS: KEYS }).requestTimeoutMs).toBe(30_000);
    expect(parseConfig({ HERALD_API_KEYS: KEYS, HERALD_REQUEST_TIMEOUT_MS: '1000' }).requestTimeoutMs).toBe(1_000);
    expect(() => parseConfig({ HERALD_API_KEYS: KEYS, HERALD_REQUEST_TIMEOUT_MS: '999' })).toThrow(/^HERALD_REQUEST_TIMEOUT_MS must be between 1000 and 600000 \(got 999\)$/);
  });

  // One wrong value of each kind: the message names the variable, says what it accepts and shows what it got.
  it.each([
    ['integer', { HERALD_MAX_BODY_BYTES: 'abc' }, 'HERALD_MAX_BODY_BYTES must be a whole number from 1024 to 67108864 (got "abc")'],
    ['integer out of range', { HERALD_MAX_BODY_BYTES: '1023' }, 'HERALD_MAX_BODY_BYTES must be between 1024 and 67108864 (got 1023)'],
    ['integer in hex', { HERALD_DB_POOL_SIZE: '0x10' }, 'HERALD_DB_POOL_SIZE must be a whole number from 1 to 1000 (got "0x10")'],
    ['integer with a fraction', { HERALD_CHECK_CONCURRENCY: '1.0' }, 'HERALD_CHECK_CONCURRENCY must be a whole number from 1 to 1000 (got "1.0")'],
    ['boolean', { HERALD_INSECURE_NO_AUTH: 'on' }, 'HERALD_INSECURE_NO_AUTH must be true or false (got "on")'],
    ['url', { AMQP_URL: 'rabbit' }, 'AMQP_URL is not a valid URL'],
    ['url scheme', { AMQP_URL: 'http://broker:5672' }, 'AMQP_URL must start with amqp:// or amqps://'],
    ['enum', { HERALD_LOG_LEVEL: 'verbose' }, 'HERALD_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "verbose")'],
    ['two-way enum', { HERALD_ON_CHECKS_EXHAUSTED: 'retry' }, 'HERALD_ON_CHECKS_EXHAUSTED must be rollback or hold (got "retry")'],
    ['pattern', { HERALD_QUEUE_PREFIX: 'a/b' }, 'HERALD_QUEUE_PREFIX must be 1–64 characters of A-Z a-z 0-9 _ - (got "a/b")'],
  ])('refuses a wrong %s with a message naming the variable', (_kind, env, message) => {
    expect(() => parseConfig({ HERALD_API_KEYS: KEYS, ...env })).toThrow(new ConfigError(message));
  });

  it('names every wrong variable at once, in the order of the table', () => {
    expect(() => parseConfig({ HERALD_API_KEYS: KEYS, HERALD_ROLE: 'both', PORT: 'x', HERALD_ALLOW_PRIVATE_URLS: 'maybe' })).toThrow(
      new ConfigError('PORT must be a whole number from 0 to 65535 (got "x"); HERALD_ALLOW_PRIVATE_URLS must be true or false (got "maybe"); HERALD_ROLE must be one of api, worker, all (got "both")'),
    );
  });

  // Guards against a variable added to the schema with a kind the error messages do not know.
  it('refuses a wrong value of every variable in the schema, naming it', () => {
    const wrong: Record<string, string> = { integer: '12abc', boolean: 'perhaps', string: '\u0000 not valid \u0000' };
    let checked = 0;
    for (const [name, variable] of envVariables()) {
      const value = variable.enum ? 'none-of-these' : wrong[variable.type ?? ''];
      if (!variable.enum && !variable.format && !variable.pattern && variable.type === 'string') continue; // free text, e.g. HOST
      // Tracing variables are read, and so judged, only with tracing on.
      const env = { HERALD_API_KEYS: KEYS, HERALD_TRACING: 'otlp', [name]: value };
      expect(() => parseConfig(env), name).toThrow(new RegExp(`^${name} (must|is not)`));
      checked++;
    }
    expect(checked).toBeGreaterThan(30);
  });

  it('reads integers and booleans strictly, but trims them and takes blank as unset', () => {
    const config = parseConfig({ HERALD_API_KEYS: ` ${KEYS} `, PORT: ' 8080 ', HERALD_DB_POOL_SIZE: '   ', HERALD_ALLOW_PRIVATE_URLS: 'YES', OTEL_SDK_DISABLED: '0' });
    expect(config).toMatchObject({ port: 8080, dbPoolSize: 20, allowPrivateUrls: true });
    expect(config.apiKeys).toHaveLength(2);
    // As in OpenTelemetry, enumerated values are read case-insensitively.
    expect(parseConfig({ HERALD_API_KEYS: KEYS, HERALD_TRACING: 'OTLP' }).tracing).not.toBeNull();
  });

  it('ignores environment variables it does not know', () => {
    const config = parseConfig({ HERALD_API_KEYS: KEYS, PATH: '/usr/bin', HERALD_NOT_A_SETTING: 'x' });
    expect(config).not.toHaveProperty('PATH');
    expect(JSON.stringify(config)).not.toContain('HERALD_NOT_A_SETTING');
  });

  // OTEL_* variables are standard names other software in the same environment may set.
  it('does not judge tracing variables while tracing is off', () => {
    expect(parseConfig({ HERALD_API_KEYS: KEYS, HERALD_TRACING: 'off', OTEL_SERVICE_NAME: 'has space', OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://collector:4317' }).tracing).toBeNull();
    expect(parseConfig({ HERALD_API_KEYS: KEYS, OTEL_BSP_SCHEDULE_DELAY: 'soon' }).tracing).toBeNull();
    expect(() => parseConfig({ HERALD_API_KEYS: KEYS, OTEL_BSP_SCHEDULE_DELAY: 'soon', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toThrow(/^OTEL_BSP_SCHEDULE_DELAY must be a whole number/);
  });

  it('takes a check secret of 24 bytes or more and never shows it', () => {
    const secret = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;
    expect(parseConfig({ HERALD_API_KEYS: KEYS, HERALD_CHECK_SECRET: secret }).checks.secret).toBe(secret);
    expect(parseConfig({ HERALD_API_KEYS: KEYS }).checks.secret).toBeNull();
    const short = `whsec_${Buffer.alloc(23, 7).toString('base64')}`;
    expect(() => parseConfig({ HERALD_API_KEYS: KEYS, HERALD_CHECK_SECRET: short })).toThrow(
      new ConfigError('HERALD_CHECK_SECRET must be whsec_ followed by at least 24 random bytes in base64 (e.g. whsec_$(openssl rand -base64 32))'),
    );
  });

  it('migrates with the database variables alone, without API keys', () => {
    expect(parseMigrationConfig({ DATABASE_URL: 'mysql://root@db:3306/herald', PORT: 'ignored' })).toEqual({ databaseUrl: 'mysql://root@db:3306/herald', logLevel: 'info' });
    expect(() => parseMigrationConfig({ DATABASE_URL: 'postgres://db/herald' })).toThrow(new ConfigError('DATABASE_URL must start with mysql://'));
  });

  // Guards against the documented table drifting from the schema; npm run config:doc -- --write regenerates it.
  it('documents every variable in docs/configuration.md as the schema says', () => {
    const page = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
    expect(page).toContain(renderEnvTable());
  });
});
