import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { expressions, exposedNames, loadDashboard, metricNames } from './dashboard';
import { dockerStages, workdir, type Stage } from './dockerfile';
import { validateAll } from './k8s-models';
import { ROOT, readText, renderKustomize } from './workspace';

// Reproduces the Dockerfile's production stage without Docker: the files it copies, its
// install command, its ENV, USER and CMD, then runs that directory against the shared MySQL,
// Redis and RabbitMQ. What passes here is what the image holds, minus the base image's Node.

const MYSQL_SERVER = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const REDIS_URL = process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const AMQP_URL = process.env.HERALD_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const AS_ROOT = process.getuid?.() === 0;

interface Image {
  root: string;
  app: string;
  env: Record<string, string>;
  uid: number;
  gid: number;
  cmd: string[];
}

/** Carries out the final stage's steps into a temporary directory standing in for `/`. */
function assembleImage(stages: Stage[]): Image {
  const final = stages.at(-1) as Stage;
  const root = mkdtempSync(join(tmpdir(), 'herald-image-'));
  chmodSync(root, 0o755);
  const inRoot = (path: string) => join(root, path);
  const app = inRoot(workdir(final));
  mkdirSync(app, { recursive: true });
  // /tmp is the only writable place in the pod (an emptyDir); HOME is read-only there.
  mkdirSync(inRoot('tmp'), { mode: 0o1777 });
  chmodSync(inRoot('tmp'), 0o1777);
  mkdirSync(inRoot('home/node'), { recursive: true, mode: 0o555 });
  const image: Image = { root, app, env: {}, uid: 0, gid: 0, cmd: [] };
  for (const step of final.steps) {
    switch (step.keyword) {
      case 'COPY': {
        const sources = step.args.slice(0, -1);
        const dest = join(app, step.args.at(-1) as string);
        const from = step.flags.from ? stages.find((s) => s.name === step.flags.from) : undefined;
        if (step.flags.from && !from) throw new Error(`COPY --from=${step.flags.from}: no such stage`);
        for (const src of sources) {
          // The build stage copied the whole context into its WORKDIR and built there, so its
          // paths map onto this checkout (whose build the deploy:test target runs first).
          const local = from ? join(ROOT, src.replace(new RegExp(`^${workdir(from)}/?`), '')) : join(ROOT, src);
          if (!existsSync(local)) throw new Error(`${local} is missing: run \`npx nx run server:build\` first (deploy:test depends on it)`);
          const target = dest.endsWith('/') ? join(dest, src.split('/').at(-1) as string) : dest;
          cpSync(local, target, { recursive: true });
        }
        break;
      }
      case 'RUN': {
        // As in the image, installs run as root before USER; the npm cache here is reused.
        const [bin = '', ...args] = step.args;
        execFileSync(bin, [...args, '--prefer-offline'], { cwd: app, stdio: 'pipe', env: { ...process.env, NODE_ENV: image.env.NODE_ENV ?? '' } });
        break;
      }
      case 'ENV':
        for (const pair of step.args) {
          const [k = '', ...v] = pair.split('=');
          const value = v.join('=');
          image.env[k] = value.startsWith('/tmp') ? inRoot(value) : value;
        }
        break;
      case 'USER': {
        const [uid = '0', gid = uid] = (step.args[0] ?? '').split(':');
        image.uid = Number(uid);
        image.gid = Number(gid);
        break;
      }
      case 'CMD':
        image.cmd = step.args;
        break;
    }
  }
  return image;
}

interface Running {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  output: () => string;
  exited: Promise<number | null>;
}

function spawnImage(image: Image, cmd: string[], env: Record<string, string>) {
  const child = spawn(cmd[0] as string, cmd.slice(1), {
    cwd: image.app,
    env: { PATH: process.env.PATH ?? '', HOME: join(image.root, 'home/node'), ...image.env, ...env },
    // Run as the image's USER where this test may (as root, like CI), so a write outside /tmp fails here too.
    ...(AS_ROOT && { uid: image.uid, gid: image.gid }),
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so clean-up reaches node even if npm died without it.
    detached: true,
  });
  let stdout = '';
  let all = '';
  child.stdout?.on('data', (d: Buffer) => ((stdout += d.toString()), (all += d.toString())));
  child.stderr?.on('data', (d: Buffer) => (all += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, output: () => all, exited };
}

async function startImage(image: Image, env: Record<string, string>): Promise<Running> {
  const proc = spawnImage(image, image.cmd, { ...env, HOST: '127.0.0.1', PORT: '0' });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not listening within 20 s:\n${proc.output()}`)), 20_000);
    proc.child.stdout?.on('data', () => {
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(proc.stdout());
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void proc.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before listening:\n${proc.output()}`));
    });
  });
  return { ...proc, url };
}

describe('the production image, assembled from the Dockerfile without Docker', () => {
  let image: Image;
  const database = `herald_t_image_${randomBytes(4).toString('hex')}`;
  const databaseUrl = `${MYSQL_SERVER}/${database}`;
  const prefix = `herald_t_img_${randomBytes(3).toString('hex')}`;
  const running: Running[] = [];

  // The env the manifests give: the dev overlay's ConfigMap and Secret for the API, compose's
  // for the worker, with only the addresses pointed at this machine's services.
  const local = { DATABASE_URL: databaseUrl, REDIS_URL, AMQP_URL, HERALD_QUEUE_PREFIX: prefix };
  const dev = validateAll(renderKustomize('deploy/k8s/overlays/dev'), 'dev');
  const devSecret = dev.secrets.find((s) => s.metadata?.name === 'herald-secrets')?.stringData ?? {};
  const apiEnv: Record<string, string> = { ...dev.configMaps[0]?.data, ...devSecret, ...local, HERALD_ROLE: 'api' };
  const compose = parse(readText('deploy/compose/compose.yaml'), { merge: true }) as { services: Record<string, { environment: Record<string, string> }> };
  const workerEnv = { ...compose.services.worker?.environment, ...local };
  const base = validateAll(renderKustomize('deploy/k8s/base'), 'base');

  beforeAll(() => {
    image = assembleImage(dockerStages());
    // The pods mount the herald-api-keys Secret as a directory; here it is a directory in the image's root.
    const keys = dev.secrets.find((s) => s.metadata?.name === 'herald-api-keys')?.stringData?.['keys.json'];
    if (keys === undefined || apiEnv.HERALD_API_KEYS_FILE === undefined) throw new Error('the dev overlay gives no keys file');
    const mounted = join(image.root, apiEnv.HERALD_API_KEYS_FILE);
    mkdirSync(dirname(mounted), { recursive: true });
    writeFileSync(mounted, keys);
    apiEnv.HERALD_API_KEYS_FILE = mounted;
  }, 120_000);

  afterAll(async () => {
    for (const r of running) {
      try {
        process.kill(-(r.child.pid as number), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (image) rmSync(image.root, { recursive: true, force: true });
    const c = await createConnection(MYSQL_SERVER);
    await c.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await c.end();
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('holds the bundle, its migrations and production dependencies only', () => {
    expect(existsSync(join(image.app, 'dist/apps/server/main.js'))).toBe(true);
    expect(existsSync(join(image.app, 'dist/apps/server/migrations/0001_messages.sql'))).toBe(true);
    // The console's static build; its libraries are bundled into it, not installed.
    expect(existsSync(join(image.app, 'dist/apps/console/index.html'))).toBe(true);
    expect(existsSync(join(image.app, 'node_modules/fastify/package.json'))).toBe(true);
    for (const dev of ['vitest', 'esbuild', 'nx', 'typescript', 'vite', 'preact', 'openapi-fetch']) expect(existsSync(join(image.app, 'node_modules', dev)), dev).toBe(false);
    // drizzle-orm is inside the bundle: loaded module by module from node_modules, it cost Node 24
    // ~190 MiB of heap at start-up (docs/performance.md, "Memory").
    const bundle = readFileSync(join(image.app, 'dist/apps/server/main.js'), 'utf8');
    expect(bundle).toMatch(/from "fastify"/);
    expect(bundle).not.toMatch(/from "drizzle-orm/);
  });

  it('npm run migrate, as the migrations Job runs it, creates the schema with DATABASE_URL alone and exits 0', async () => {
    const proc = spawnImage(image, ['npm', 'run', 'migrate'], { DATABASE_URL: databaseUrl });
    expect(await proc.exited, proc.output()).toBe(0);
    expect(proc.output()).toContain('database migrated');
    const c = await createConnection(MYSQL_SERVER);
    const [rows] = await c.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = ? AND table_name IN (?)', [database, ['messages', 'deliveries', 'subscriptions', 'check_attempts']]);
    await c.end();
    expect(rows[0]?.n).toBe(4);
  });

  it('npm start serves /healthz and /readyz as api and as worker, with the env the manifests give, logging only JSON', async () => {
    const api = await startImage(image, apiEnv);
    running.push(api);
    const worker = await startImage(image, workerEnv);
    running.push(worker);
    for (const [name, r] of [['api', api], ['worker', worker]] as const) {
      const live = await fetch(`${r.url}/healthz`);
      expect(live.status, name).toBe(200);
      // The bundle carries package.json's version (esbuild inlines it; the image has no workspace).
      expect(((await live.json()) as { version: string }).version, name).toBe((JSON.parse(readText('package.json')) as { version: string }).version);
      const ready = await fetch(`${r.url}/readyz`);
      expect(ready.status, `${name}: ${await ready.clone().text()}`).toBe(200);
      // npm's own banner would break log shippers that expect one JSON object per line.
      for (const line of r.stdout().split('\n').filter(Boolean)) expect(() => JSON.parse(line), `${name} stdout: ${line}`).not.toThrow();
    }
    // The dev overlay's development key is accepted; the worker serves no API route.
    const token = /:admin:([^,]+)/.exec(apiEnv.HERALD_API_KEYS ?? '')?.[1];
    expect((await fetch(`${api.url}/v1/subscriptions`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await fetch(`${worker.url}/v1/subscriptions`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
    const consolePage = await fetch(`${api.url}/console/`);
    expect(consolePage.status).toBe(200);
    expect(consolePage.headers.get('content-security-policy')).toContain("connect-src 'self'");
  });

  it('exposes every metric the Grafana dashboard queries', async () => {
    expect(running).toHaveLength(2);
    const exposed = new Set<string>();
    for (const r of running) for (const n of exposedNames(await (await fetch(`${r.url}/metrics`)).text())) exposed.add(n);
    const queried = new Set(expressions(loadDashboard()).flatMap(metricNames));
    expect(queried.size).toBeGreaterThan(10);
    expect([...queried].filter((n) => !exposed.has(n)), 'dashboard metrics no Herald process exposes').toEqual([]);
  });

  it('drains and exits 0 when SIGTERM reaches npm, as it does from Kubernetes', async () => {
    // Only npm (PID 1 in the container) is signalled; it must pass the signal on to node.
    for (const r of running) {
      r.child.kill('SIGTERM');
      expect(await r.exited, r.output()).toBe(0);
      expect(r.output()).toContain('shutdown complete');
    }
  });

  it("refuses to start with the base's placeholder Secret", async () => {
    const placeholders = base.secrets.find((s) => s.metadata?.name === 'herald-secrets')?.stringData ?? {};
    const proc = spawnImage(image, image.cmd, { ...base.configMaps[0]?.data, ...placeholders, HOST: '127.0.0.1', PORT: '0' });
    expect(await proc.exited).not.toBe(0);
    // The schema's checks come first (the check secret's placeholder), the keys' rules after them.
    expect(proc.output()).toMatch(/configuration error: HERALD_CHECK_SECRET must be whsec_ followed by at least 24 random bytes/);
  });
});
