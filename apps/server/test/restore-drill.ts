/**
 * Backup and restore drill: Herald under load on one database, `mysqldump --single-transaction`
 * taken mid-load, the dump restored into a new database, Herald started on it beside an empty
 * Redis. Reports what each class of message became. Run by `scripts/restore-drill.ts` (prints it)
 * and by `restore-drill.faults.test.ts` (checks it against docs/operations.md).
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createConnection } from 'mysql2/promise';
import { migrate } from '@herald/db';
import { deleteKeysUnder } from '@herald/test-support';
import { buildApp } from '../src/app';
import { parseConfig } from '../src/config';

export const DRILL_CLASSES = ['delivered-before', 'confirmed-after', 'sending-at-dump', 'published-after', 'prepared-after', 'load'] as const;
export type DrillClass = (typeof DRILL_CLASSES)[number];

/** A message's status as the restored Herald answers it; `404` when it does not know the id. */
export type Seen = string;

/** What one message became. `inDump` is null when the dump does not hold it. */
export interface MessageFate {
  id: string;
  inDump: string | null;
  atStart: Seen;
  settled: Seen;
  /** Deliveries the consumer received from the source Herald, and from the restored one. */
  deliveriesBefore: number;
  deliveriesAfter: number;
}

export interface ClassReport {
  count: number;
  /** Status → number of messages; the dump's counts leave out the messages it does not hold. */
  inDump: Record<string, number>;
  atStart: Record<Seen, number>;
  settled: Record<Seen, number>;
  /** Messages delivered at least once more by the restored Herald. */
  deliveredAgain: number;
  messages: MessageFate[];
}

export interface DrillReport {
  perClass: number;
  /** Prepare + confirm pairs made while the dump was taken. */
  loadPairs: number;
  /** From the first prepare of `confirmed-after` to the dump: under checkAfterMs, the dump holds them prepared. */
  confirmGapMs: number;
  checkAfterMs: number;
  dumpFile: string;
  classes: Record<DrillClass, ClassReport>;
}

export interface DrillOptions {
  /** Database and Redis prefix stem: `<name>_a` is the source, `<name>_b` the restored one. */
  name?: string;
  /** Messages per class (the load class has as many as the producers manage). */
  perClass?: number;
  producers?: number;
  /** When check-back first asks about a prepared message; what the restored Herald waits for. */
  checkAfterMs?: number;
  sweepIntervalMs?: number;
  reconcileIntervalMs?: number;
  /** Keep the dump file in /tmp after the drill (it is deleted otherwise, even on failure). */
  keepDump?: boolean;
  /**
   * The drill gives up after this long in all (default: each wait alone gives up after 60 s); its
   * cleanup still runs. It bounds the waits, the dump and the restore; a request or a Herald start
   * that hangs is not bounded by it.
   */
  budgetMs?: number;
  log?: (line: string) => void;
  mysql?: { host: string; port: number; user: string; password?: string };
  redisUrl?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until `done()`: at most 60 s, and never past `giveUpAt` (the drill's whole budget), so a
 * drill that stalls says so, and still has time to remove what it created, rather than hang.
 */
async function until(what: string, done: () => boolean | Promise<boolean>, giveUpAt = Infinity): Promise<void> {
  const deadline = Math.min(Date.now() + 60_000, giveUpAt);
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}${deadline === giveUpAt ? ' (the drill ran out of its budgetMs)' : ''}`);
    await sleep(100);
  }
}

/**
 * The consumer: counts deliveries per message id; `/slow` holds its answers until `release()`, so
 * those deliveries are still pending when the dump is taken. And the producer's check endpoint: always commit.
 */
async function endpoints() {
  const deliveries = new Map<string, number>();
  const held: Array<() => void> = [];
  let holding = true;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/check') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"commit"}');
      const id = String(req.headers['webhook-id']);
      deliveries.set(id, (deliveries.get(id) ?? 0) + 1);
      if (req.url === '/slow' && holding) return void held.push(() => res.writeHead(200).end('ok'));
      res.writeHead(200).end('ok');
    });
  });
  const release = () => {
    holding = false;
    for (const answer of held.splice(0)) answer();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { deliveries, held, release, base, close: () => (release(), new Promise<void>((resolve) => server.close(() => resolve()))) };
}

const tally = (values: Iterable<string>) => {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
};

/** `40 delivered, 2 gone (404)` — the drill's log lines and docs/operations.md use this form. */
export function formatCounts(counts: Record<string, number>): string {
  return Object.entries(counts).sort(([x], [y]) => x.localeCompare(y)).map(([s, n]) => `${n} ${s === '404' ? 'gone (404)' : s}`).join(', ') || 'none';
}

/**
 * Runs the drill and returns what each class of message became. Both databases and both Redis
 * prefixes are removed afterwards, whether the drill passed or threw.
 */
export async function runRestoreDrill(options: DrillOptions = {}): Promise<DrillReport> {
  const name = options.name ?? `herald_drill_${randomBytes(3).toString('hex')}`;
  const N = options.perClass ?? 40;
  const producers = options.producers ?? 8;
  const checkAfterMs = options.checkAfterMs ?? 10_000;
  const log = options.log ?? (() => undefined);
  const giveUpAt = Date.now() + (options.budgetMs ?? Infinity);
  const wait = (what: string, done: () => boolean | Promise<boolean>) => until(what, done, giveUpAt);
  // The dump and the restore are bounded by what is left of the budget too (they are killed past it).
  const toolTimeout = () => (Number.isFinite(giveUpAt) ? { timeout: Math.max(1, giveUpAt - Date.now()) } : {});
  const mysql = options.mysql ?? { host: '127.0.0.1', port: 3306, user: 'root' };
  const mysqlArgs = ['-h', mysql.host, '-P', String(mysql.port), '-u', mysql.user];
  // The password reaches the client tools by environment, never on their command line.
  const mysqlEnv = { ...process.env, ...(mysql.password ? { MYSQL_PWD: mysql.password } : {}) };
  const auth = mysql.password ? `${encodeURIComponent(mysql.user)}:${encodeURIComponent(mysql.password)}` : encodeURIComponent(mysql.user);
  const server = `mysql://${auth}@${mysql.host}:${mysql.port}`;
  const redisUrl = options.redisUrl ?? 'redis://127.0.0.1:6379';
  const token = `drill-admin-${randomBytes(12).toString('hex')}`;
  const source = `${name}_a`;
  const restored = `${name}_b`;
  const dumpFile = `/tmp/${name}.sql`;

  const startHerald = async (database: string): Promise<{ app: FastifyInstance; url: string }> => {
    const app = await buildApp(
      parseConfig({
        DATABASE_URL: `${server}/${database}`,
        REDIS_URL: redisUrl,
        HERALD_API_KEYS: `drill:admin:${token}`,
        // One prefix per database: the restored Herald starts beside an empty Redis.
        HERALD_QUEUE_PREFIX: database,
        HERALD_ALLOW_PRIVATE_URLS: 'true',
        HERALD_CHECK_SECRET: 'whsec_ZHJpbGwtb25seS1jaGVjay1zZWNyZXQtMDEyMzQ1Njc4OQ==',
        HERALD_CHECK_SWEEP_INTERVAL_MS: String(options.sweepIntervalMs ?? 500),
        ...(options.reconcileIntervalMs !== undefined && { HERALD_RECONCILE_INTERVAL_MS: String(options.reconcileIntervalMs) }),
        HERALD_LOG_LEVEL: 'warn',
        // The lease of a delivery pending in the dump outlives the attempt by this much and a margin.
        HERALD_WEBHOOK_TIMEOUT_MS: '5000',
        // A drill on a shared machine: no load shedding or rate limit in the way.
        HERALD_MAX_EVENT_LOOP_DELAY_MS: '0',
        HERALD_RATE_LIMIT_PER_MINUTE: '0',
      }),
      { logger: false },
    );
    try {
      return { app, url: await app.listen({ port: 0, host: '127.0.0.1' }) };
    } catch (err) {
      await app.close();
      throw err;
    }
  };

  const api = async (url: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (method !== 'GET' && res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
    return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };

  const ep = await endpoints();
  let a: Awaited<ReturnType<typeof startHerald>> | undefined;
  let b: Awaited<ReturnType<typeof startHerald>> | undefined;
  const drill = async (): Promise<DrillReport> => {
    await migrate({ url: `${server}/${source}` });
    a = await startHerald(source);
    const sub = await api(a.url, 'POST', '/v1/subscriptions', { name: 'drill', topic: 'drill.#', target: { type: 'webhook', url: `${ep.base}/hook` } });
    if (sub.status !== 201) throw new Error(`subscription: ${sub.status} ${JSON.stringify(sub.json)}`);
    const slow = await api(a.url, 'POST', '/v1/subscriptions', { name: 'drill slow', topic: 'slow.#', target: { type: 'webhook', url: `${ep.base}/slow` } });
    if (slow.status !== 201) throw new Error(`subscription: ${slow.status} ${JSON.stringify(slow.json)}`);
    log(`Herald started on ${source}; ${N} messages per class`);
    const prepare = (url: string, id: string, confirm = false, topic = 'drill.order') => api(url, 'POST', '/v1/messages', { id, topic, payload: { id }, ...(confirm ? { confirm: true } : { checkUrl: `${ep.base}/check`, checkAfterMs }) });
    const ids = (cls: DrillClass) => Array.from({ length: N }, (_, i) => `${cls}-${name}-${i}`);

    // Before the dump: delivered, and prepared (to be confirmed after it).
    for (const id of ids('delivered-before')) await prepare(a.url, id, true);
    const firstPrepare = Date.now();
    let dumpStartedAt = firstPrepare;
    for (const id of ids('confirmed-after')) await prepare(a.url, id);
    await wait('the first deliveries', () => ids('delivered-before').every((id) => ep.deliveries.has(id)));
    // Published, and their deliveries under way (leased, answer held) while the dump is taken.
    for (const id of ids('sending-at-dump')) await prepare(a.url, id, true, 'slow.order');
    await wait('the held deliveries', () => ep.held.length === N);

    // Load during the dump: prepare + confirm pairs back to back.
    let loading = true;
    let loadPairs = 0;
    const source$ = a;
    // Settled to its error (or undefined) at once, so a failing producer is reported, not unhandled.
    const load = Promise.all(
      Array.from({ length: producers }, async () => {
        while (loading) {
          const id = `load-${name}-${loadPairs++}`;
          await prepare(source$.url, id);
          await api(source$.url, 'POST', `/v1/messages/${id}/confirm`);
        }
      }),
    ).then(
      () => undefined,
      (err: unknown) => err,
    );
    try {
      await sleep(500);
      log(`mysqldump --single-transaction ${source} (under load)`);
      dumpStartedAt = Date.now();
      // Asynchronous, so Herald and the producers keep committing while the snapshot is read.
      await promisify(execFile)('mysqldump', [...mysqlArgs, '--single-transaction', '--routines', '--events', `--result-file=${dumpFile}`, source], { env: mysqlEnv, ...toolTimeout() });
      await sleep(300);
    } finally {
      loading = false;
      ep.release();
    }
    const loadFailure = await load;
    if (loadFailure) throw loadFailure;

    // After the dump: the prepared ones are confirmed (and delivered), new messages come and stay prepared.
    for (const id of ids('confirmed-after')) await api(a.url, 'POST', `/v1/messages/${id}/confirm`);
    const confirmGapMs = dumpStartedAt - firstPrepare;
    for (const id of ids('published-after')) await prepare(a.url, id, true);
    for (const id of ids('prepared-after')) await prepare(a.url, id);
    await wait('the deliveries after the dump', () => [...ids('confirmed-after'), ...ids('published-after')].every((id) => ep.deliveries.has(id)));
    await wait('the held deliveries recorded', async () => (await Promise.all(ids('sending-at-dump').map((id) => api(source$.url, 'GET', `/v1/messages/${id}`)))).every((r) => r.json.status === 'delivered'));
    await a.app.close();
    a = undefined;
    // Closing waits for the workers' jobs, so nothing the source sends arrives after this copy.
    const deliveredBySource = new Map(ep.deliveries);
    log(`source stopped; restoring the dump into ${restored}`);

    const c = await createConnection(server);
    await c.query(`CREATE DATABASE \`${restored}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    await c.end();
    execFileSync('mysql', [...mysqlArgs, restored], { input: readFileSync(dumpFile), env: mysqlEnv, ...toolTimeout() });

    const idsOf: Record<DrillClass, string[]> = {
      'delivered-before': ids('delivered-before'),
      'confirmed-after': ids('confirmed-after'),
      'sending-at-dump': ids('sending-at-dump'),
      'published-after': ids('published-after'),
      'prepared-after': ids('prepared-after'),
      load: Array.from({ length: loadPairs }, (_, i) => `load-${name}-${i}`),
    };
    const inDump = new Map<string, string>();
    const restoredDb = await createConnection(`${server}/${restored}`);
    try {
      const [rows] = (await restoredDb.query('SELECT id, status FROM messages')) as unknown as [Array<{ id: string; status: string }>];
      for (const r of rows) inDump.set(r.id, r.status);
    } finally {
      await restoredDb.end();
    }
    for (const cls of DRILL_CLASSES) log(`  in the dump ${cls}: ${formatCounts(tally(idsOf[cls].flatMap((id) => inDump.get(id) ?? [])))}`);

    b = await startHerald(restored);
    log('Herald started on the restored database');
    const restoredUrl = b.url;
    const statusIn = async (id: string): Promise<Seen> => {
      const r = await api(restoredUrl, 'GET', `/v1/messages/${id}`);
      return r.status === 404 ? '404' : String(r.json.status);
    };
    const again = (list: string[]) => list.filter((id) => (ep.deliveries.get(id) ?? 0) > (deliveredBySource.get(id) ?? 0)).length;

    const atStart = new Map<string, Seen>();
    for (const cls of DRILL_CLASSES) {
      for (const id of idsOf[cls]) atStart.set(id, await statusIn(id));
      log(`  at start   ${cls}: ${formatCounts(tally(idsOf[cls].map((id) => atStart.get(id)!)))}; delivered again after the restore: ${again(idsOf[cls])}`);
    }
    // Check-back resolves the prepared ones, the reconciler sends the pending deliveries Redis
    // never knew about: wait until every message is delivered or gone.
    const all = DRILL_CLASSES.flatMap((cls) => idsOf[cls]);
    const settled = new Map<string, Seen>();
    await wait('every message delivered or gone', async () => {
      const seen = await Promise.all(all.map(statusIn));
      all.forEach((id, i) => settled.set(id, seen[i]!));
      return seen.every((st) => st === 'delivered' || st === '404');
    });
    // A message counts as settled once delivered; its delivery may still be on its way.
    await wait('the deliveries of the settled messages', () => all.every((id) => settled.get(id) !== 'delivered' || (ep.deliveries.get(id) ?? 0) > 0));

    const classes = {} as Record<DrillClass, ClassReport>;
    for (const cls of DRILL_CLASSES) {
      const list = idsOf[cls];
      classes[cls] = {
        count: list.length,
        inDump: tally(list.flatMap((id) => inDump.get(id) ?? [])),
        atStart: tally(list.map((id) => atStart.get(id)!)),
        settled: tally(list.map((id) => settled.get(id)!)),
        deliveredAgain: again(list),
        messages: list.map((id) => ({
          id,
          inDump: inDump.get(id) ?? null,
          atStart: atStart.get(id)!,
          settled: settled.get(id)!,
          deliveriesBefore: deliveredBySource.get(id) ?? 0,
          deliveriesAfter: (ep.deliveries.get(id) ?? 0) - (deliveredBySource.get(id) ?? 0),
        })),
      };
      const line = `${formatCounts(classes[cls].settled)}; delivered again after the restore: ${classes[cls].deliveredAgain}`;
      log(cls === 'load' ? `  load during the dump (${loadPairs} pairs): ${line}` : `  settled    ${cls}: ${line}`);
    }
    return { perClass: N, loadPairs, confirmGapMs, checkAfterMs, dumpFile, classes };
  };

  // Every step runs even when one before it fails: a drill leaves nothing behind.
  const cleanup = async () => {
    const steps = [
      () => a?.app.close(),
      () => b?.app.close(),
      () => ep.close(),
      async () => {
        const c = await createConnection(server);
        try {
          for (const db of [source, restored]) await c.query(`DROP DATABASE IF EXISTS \`${db}\``);
        } finally {
          await c.end();
        }
      },
      ...[source, restored].map((prefix) => () => deleteKeysUnder(redisUrl, prefix)),
      () => (options.keepDump ? undefined : rmSync(dumpFile, { force: true })),
    ];
    const failures: unknown[] = [];
    for (const step of steps) await Promise.resolve().then(step).catch((err: unknown) => failures.push(err));
    log(options.keepDump ? `done; the dump is ${dumpFile}` : 'done');
    if (failures.length) throw new AggregateError(failures, 'the drill could not remove all it created');
  };

  let report: DrillReport;
  try {
    report = await drill();
  } catch (err) {
    // The drill's own failure is the one to report; a cleanup failure after it only adds a line.
    await cleanup().catch((also: unknown) => log(`cleanup failed as well: ${String(also)}`));
    throw err;
  }
  await cleanup();
  return report;
}
