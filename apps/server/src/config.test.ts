import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './config';

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
      { name: 'ops', role: 'admin', token: '0123456789abcdef0123' },
      { name: 'orders', role: 'producer', token: 'fedcba9876543210fedc' },
    ]);
  });

  it('keeps colons inside a token', () => {
    expect(parseConfig({ HERALD_API_KEYS: 'a:admin:abc:def:ghi:jkl:mnop:qrs' }).apiKeys[0]?.token).toBe('abc:def:ghi:jkl:mnop:qrs');
  });

  it.each([
    [{}, /HERALD_API_KEYS is empty/],
    [{ HERALD_API_KEYS: 'ops:root:0123456789abcdef0123' }, /entry 1 \("ops"\): role must be admin or producer/],
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
});
