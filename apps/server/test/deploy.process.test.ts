import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MYSQL_SERVER, createTestDatabase, testEnv } from './helpers';
import { spawnServer, startServer } from './server-process';

/** Runs `main.js <args>` as a real process and collects its exit code and output. */
async function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const herald = await spawnServer(env, args);
  const { code } = await herald.exited;
  return { code, output: herald.output() };
}

async function tablesOf(database: string): Promise<string[]> {
  const c = await createConnection(MYSQL_SERVER);
  try {
    const [rows] = await c.query<RowDataPacket[]>('SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? ORDER BY 1', [database]);
    return rows.map((r) => String(r.t));
  } finally {
    await c.end();
  }
}

describe('main.js migrate (the Kubernetes migrations Job and init container)', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    db = await createTestDatabase('migcmd');
    // Start from a database that does not exist, as a first deployment does.
    await db.drop();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('creates the database, applies every migration and exits 0, needing only DATABASE_URL', async () => {
    const first = await run(['migrate'], { DATABASE_URL: db.url });
    expect(first.output).toContain('database migrated');
    expect(first.code).toBe(0);
    expect(first.output).toMatch(/"applied":\["0001_messages\.sql"/);
    expect(await tablesOf(db.name)).toEqual(expect.arrayContaining(['check_attempts', 'deliveries', 'delivery_attempts', 'herald_migrations', 'messages', 'subscriptions']));

    // A second run (every pod's init container after the Job) finds nothing left to do.
    const again = await run(['migrate'], { DATABASE_URL: db.url });
    expect(again.code).toBe(0);
    expect(again.output).toContain('"applied":[]');
  });

  it('exits non-zero with a clear message when MySQL cannot be reached or the URL is wrong', async () => {
    const unreachable = await run(['migrate'], { DATABASE_URL: 'mysql://root@127.0.0.1:9/herald_nowhere' });
    expect(unreachable.code).toBe(1);
    expect(unreachable.output).toMatch(/herald: migration failed: .*ECONNREFUSED/);

    const wrongScheme = await run(['migrate'], { DATABASE_URL: 'postgres://db/herald' });
    expect(wrongScheme.code).toBe(78);
    expect(wrongScheme.output).toContain('configuration error: DATABASE_URL must start with mysql://');
  });

  it('refuses an unknown command instead of starting the server', async () => {
    const unknown = await run(['migrat'], testEnv(db.url));
    expect(unknown.code).toBe(64);
    expect(unknown.output).toContain('unknown command "migrat"');
  });
});

describe('HERALD_ROLE=worker', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    db = await createTestDatabase('worker');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('serves the probes and metrics over HTTP (Kubernetes probes and Prometheus need them) but not the API', async () => {
    const server = await startServer(testEnv(db.url, { HERALD_ROLE: 'worker' }));
    try {
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ status: 'ready', checks: { mysql: { ok: true }, redis: { ok: true } } });
      const metrics = await fetch(`${server.url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('# TYPE herald_delivery_queue_jobs gauge');
      expect((await fetch(`${server.url}/v1/messages`, { method: 'POST' })).status).toBe(404);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
