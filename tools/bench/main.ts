/**
 * Herald's benchmark: Herald beside the raw MySQL and RabbitMQ limits of the same machine, in one
 * run. See docs/performance.md. `npm run bench -- --help` lists the options.
 * Over 400 lines: it is the one script that reads the options and runs each scenario in order;
 * the parts that stand alone (load, sinks, stats, report, baselines) are files of their own.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { connect } from 'amqplib';
import { Redis } from 'ioredis';
import { createConnection, createPool, type Pool as MysqlPool } from 'mysql2/promise';
import { Pool, type Dispatcher } from 'undici';
import { migrate } from '@herald/db';
import { processFromPidFile, readCpuMs, readMemory, sampleMemory, startHerald, startScriptNodeFlags, type HeraldProcess } from './herald.process';
import { closedLoop, openLoop, type LoadResult, type Operation } from './load.generator';
import { createRawTable, rawAmqpBaseline, rawMysqlBaseline } from './raw.baseline';
import { countersPerOp, snapshotCounters, type CounterSnapshot } from './server.counters';
import { NAIVE_STACKS, type NaiveStack } from './naive.service';
import { markdownTable, naiveTable, svgChart, type BenchRow, type NaivePeerFigures } from './report';
import { startBenchAmqpConsumer, startBenchWebhookSink, type Arrivals } from './sinks';
import { describeComparison, startPurgerComparison, type ComparisonResult } from './soak';
import { summarize, type LatencySummary } from './stats';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '1,16,64' },
    scenarios: { type: 'string', default: 'pc,ordered,fanout,direct,latency' },
    rate: { type: 'string', default: '500' },
    drain: { type: 'string', default: '60' },
    soak: { type: 'string' },
    'purger-windows': { type: 'string' },
    'purger-options': { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'herald-env': { type: 'string', multiple: true, default: [] },
    'herald-node-arg': { type: 'string', multiple: true, default: [] },
    url: { type: 'string' },
    'admin-token': { type: 'string' },
    'producer-token': { type: 'string' },
    pid: { type: 'string' },
    out: { type: 'string', default: 'bench/results' },
    label: { type: 'string', default: '' },
    'keep-database': { type: 'boolean', default: false },
    entry: { type: 'string', default: 'dist/apps/server/main.js' },
    'baseline-connections': { type: 'string', default: '32' },
    'herald-output': { type: 'string' },
    processes: { type: 'string', default: '1' },
    roles: { type: 'string' },
    'skip-naive': { type: 'boolean', default: false },
    'naive-stack': { type: 'string', default: 'node-http' },
    'other-subscriptions': { type: 'string', default: '0' },
    count: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  console.log(`npm run bench -- [options]
  --duration <s>        measured window per scenario and concurrency (default 10)
  --concurrency <list>  closed-loop concurrencies (default 1,16,64)
  --scenarios <list>    pc (prepare+confirm → 1 webhook), ordered (the same over 1,000 keys → 1 webhook ordered by key),
                        fanout (→ 5 webhooks), direct (confirm:true → RabbitMQ),
                        latency (prepare+confirm at --rate pairs/s); default all
  --rate <n>            pairs per second for the latency scenario and the soak (default 500)
  --drain <s>           how long to wait for deliveries after a window (default 60)
  --soak <s>            run only a steady-load soak of <s> seconds at --rate and report RSS at start and end, and
                        every 10 s the rows of each table and the messages purged (with a short retention, e.g.
                        --herald-env HERALD_RETENTION_DELIVERED_MS=60000, storage should level off)
  --purger-windows <s>  with --soak: Herald's purger runs in a process of the bench's own, off and on in alternating
                        windows of <s> seconds, and the soak reports both phases (retention from
                        HERALD_RETENTION_DELIVERED_MS, default 60000; interval HERALD_PURGE_INTERVAL_MS, default 5000;
                        cap HERALD_PURGE_MAX_PER_SECOND, default 2000)
  --purger-options <json>  with --purger-windows: more options for that purger (PurgerOptions), e.g.
                        '{"batchSize":100,"paceFactor":0}', to compare settings
  --cpu-prof            run Herald with --cpu-prof (profiles under <out>/profiles)
  --herald-env K=V      extra environment for the Herald process (repeatable)
  --herald-node-arg <f> a node flag for the Herald process after those of \`npm start\` (repeatable;
                        a later V8 flag overrides an earlier one, e.g. --heap-growing-percent=100)
  --url <url>           target a running Herald instead (with --admin-token, --producer-token, optional --pid)
  --out <dir>           where JSON and SVG go (default bench/results)
  --label <text>        a note stored with the results
  --keep-database       keep the benchmark's database and queue keys afterwards
  --entry <file>        the built Herald to run (default dist/apps/server/main.js; compare two builds)
  --baseline-connections <n>  MySQL connections of the raw baseline, at most (default 32: the server is shared)
  --herald-output <file>  write the Herald process's last output (its warnings, at the default log level) to <file>
  --processes <n>       run n Herald processes (replicas on one database, each on its own port); each closed-loop
                        caller and each open-loop pair uses one of them, in turn (default 1)
  --roles <list>        one Herald process per entry, with that HERALD_ROLE (all, api, worker), e.g. api,worker
                        for the split of deploy/k8s; requests go to the processes that serve the API
  --other-subscriptions <n>  n more enabled webhook subscriptions, each on a topic of its own that no scenario
                        publishes to (teamN.events), as a Herald shared by many teams has
  --skip-naive          do not run the naive peer (tools/bench/naive.service.ts) beside Herald in pc and direct
  --naive-stack <s>     the naive peer's HTTP layer: node-http (default), or fastify — the core of Herald's stack
                        (Fastify, Herald's schemas and validation, a bearer token), to see what that core costs
  --count               per operation, MariaDB statements (Com_*, Questions) and Redis commands (commandstats)
                        over each window and its drain: server-wide counters, meaningful on an otherwise idle machine`);
  process.exit(0);
}

const MYSQL_SERVER = process.env.HERALD_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const REDIS_URL = process.env.HERALD_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const AMQP_URL = process.env.HERALD_BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
// Benchmark-only tokens for a Herald the benchmark starts itself; they guard nothing else.
const BENCH_ADMIN_TOKEN = 'herald-bench-admin-token-NOT-FOR-PRODUCTION';
const BENCH_PRODUCER_TOKEN = 'herald-bench-producer-token-NOT-FOR-PRODUCTION';

const durationMs = Number(args.duration) * 1000;
const concurrencies = args.concurrency.split(',').map(Number).filter((n) => n > 0);
const scenarios = new Set(args.scenarios.split(','));
const rate = Number(args.rate);
const otherSubscriptions = Number(args['other-subscriptions']);
if (!Number.isInteger(otherSubscriptions) || otherSubscriptions < 0) throw new Error(`--other-subscriptions must be a whole number, not ${args['other-subscriptions']}`);
const naiveStack = args['naive-stack'] as NaiveStack;
if (!NAIVE_STACKS.includes(naiveStack)) throw new Error(`--naive-stack must be one of ${NAIVE_STACKS.join(', ')}, not ${args['naive-stack']}`);
const drainMs = Number(args.drain) * 1000;
const runId = `b${randomBytes(3).toString('hex')}`;
const name = `herald_bench_${randomBytes(4).toString('hex')}`;
const payload = { orderId: 'order-1001', amount: 4200, currency: 'EUR', items: [{ sku: 'sku-1', qty: 2 }, { sku: 'sku-2', qty: 1 }] };

/** The local MySQL server's pid, from the pid file it reports (relative paths are under its datadir). */
async function localServerPid(pool: MysqlPool): Promise<number | undefined> {
  const [rows] = (await pool.query('SELECT @@pid_file AS pidFile, @@datadir AS dataDir')) as unknown as [Array<{ pidFile: string | null; dataDir: string }>];
  const { pidFile, dataDir } = rows[0] ?? { pidFile: null, dataDir: '' };
  return pidFile ? processFromPidFile(isAbsolute(pidFile) ? pidFile : join(dataDir, pidFile)) : undefined;
}

function log(line: string) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

async function main() {
  const outDir = resolve(ROOT, args.out);
  mkdirSync(outDir, { recursive: true });
  const databaseUrl = `${MYSQL_SERVER}/${name}`;
  await migrate({ url: databaseUrl });
  // The naive writer gets a connection per concurrent caller, up to a cap that leaves the shared
  // server's max_connections for everyone else.
  const mysql = createPool({ uri: databaseUrl, connectionLimit: Math.min(Math.max(...concurrencies, 1), Number(args['baseline-connections'])), timezone: 'Z' });
  await createRawTable(mysql);

  const sink = await startBenchWebhookSink();
  const consumer = await startBenchAmqpConsumer(AMQP_URL, name);
  const amqp = await connect(AMQP_URL);
  const rawChannel = await amqp.createConfirmChannel();

  const heralds: HeraldProcess[] = [];
  const roles = args.roles ? args.roles.split(',').map((r) => r.trim()) : Array.from({ length: Math.max(1, Number(args.processes) || 1) }, () => undefined);
  if (roles.some((r) => r !== undefined && !['all', 'api', 'worker'].includes(r))) throw new Error(`--roles takes all, api and worker (got ${args.roles})`);
  if (roles.every((r) => r === 'worker')) throw new Error('--roles needs at least one process that serves the API (all or api)');
  let urls = args.url ? [args.url] : [];
  let pids = args.pid ? [Number(args.pid)] : [];
  const adminToken = args['admin-token'] ?? BENCH_ADMIN_TOKEN;
  const producerToken = args['producer-token'] ?? BENCH_PRODUCER_TOKEN;
  const heraldEnv: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    AMQP_URL,
    HERALD_API_KEYS: `bench:admin:${BENCH_ADMIN_TOKEN},default:producer:${BENCH_PRODUCER_TOKEN}`,
    HERALD_QUEUE_PREFIX: name,
    HERALD_ALLOW_PRIVATE_URLS: 'true',
    HERALD_CHECK_SECRET: 'whsec_YmVuY2gtb25seS1jaGVjay1zZWNyZXQtMDEyMzQ1Njc4OQ==',
    // The benchmark is one client sending as fast as it can: the per-token limit would cap it.
    HERALD_RATE_LIMIT_PER_MINUTE: '0',
    HERALD_LOG_LEVEL: 'warn',
  };
  // As `npm start` runs it (no source maps: they are not in production and cost heap).
  const nodeArgs = [...startScriptNodeFlags(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.start), ...args['herald-node-arg']];
  for (const kv of args['herald-env']) {
    const at = kv.indexOf('=');
    if (at > 0) heraldEnv[kv.slice(0, at)] = kv.slice(at + 1);
  }
  // The comparison's purger runs beside Herald, whose own purger is off (no retention).
  const comparing = args.soak && args['purger-windows'] ? { retentionMs: Number(heraldEnv.HERALD_RETENTION_DELIVERED_MS ?? 60_000), intervalMs: Number(heraldEnv.HERALD_PURGE_INTERVAL_MS ?? 5_000), maxPerSecond: Number(heraldEnv.HERALD_PURGE_MAX_PER_SECOND ?? 2_000), windowS: Number(args['purger-windows']), purgerOptions: JSON.parse(args['purger-options'] ?? '{}') as Record<string, unknown> } : undefined;
  if (comparing) Object.assign(heraldEnv, { HERALD_RETENTION_DELIVERED_MS: '0', HERALD_RETENTION_CANCELLED_MS: '0', HERALD_RETENTION_FAILED_MS: '0' });
  if (!args.url) {
    const entry = resolve(ROOT, args.entry);
    if (!existsSync(entry)) throw new Error(`${args.entry} is missing: run \`npm run build\` (npm run bench does)`);
    const profileDir = join(outDir, 'profiles');
    try {
      for (const role of roles) {
        heralds.push(
          await startHerald({
            entry,
            cwd: ROOT,
            env: role ? { ...heraldEnv, HERALD_ROLE: role } : heraldEnv,
            nodeArgs: [...nodeArgs, ...(args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])],
          }),
        );
      }
    } catch (err) {
      // Leave nothing behind on the shared services.
      await Promise.allSettled([...heralds.map((h) => h.stop()), consumer.close(), sink.close(), amqp.close(), mysql.end()]);
      await dropBenchState();
      throw err;
    }
    urls = heralds.filter((_, i) => roles[i] !== 'worker').map((h) => h.url);
    pids = heralds.map((h) => h.pid);
    log(`Herald started (${heralds.map((h) => `pid ${h.pid} at ${h.url}`).join(', ')}), database ${name}`);
  }
  // The naive peer: its own process with the same node flags, its own table in the same
  // database, the same webhook sink and exchange.
  let naive: HeraldProcess | undefined;
  if (!args['skip-naive'] && (scenarios.has('pc') || scenarios.has('direct')) && !args.soak) {
    try {
      naive = await startHerald({
        entry: join(ROOT, 'tools/bench/naive.service.ts'),
        cwd: ROOT,
        env: { NAIVE_DATABASE_URL: databaseUrl, NAIVE_WEBHOOK_URL: `${sink.url}/pc`, NAIVE_AMQP_URL: AMQP_URL, NAIVE_EXCHANGE: name, NAIVE_STACK: naiveStack, NAIVE_TOKEN: producerToken },
        nodeArgs: [...nodeArgs, '--import', 'tsx'],
      });
    } catch (err) {
      await Promise.allSettled([...heralds.map((h) => h.stop()), consumer.close(), sink.close(), amqp.close(), mysql.end()]);
      await dropBenchState();
      throw err;
    }
    log(`naive peer started (pid ${naive.pid} at ${naive.url}, on ${naiveStack})`);
  }
  const memories = pids.map((pid) => sampleMemory(pid));
  const rssNow = () => pids.map((pid) => readMemory(pid)?.rssMiB ?? 0);
  const startMiB = pids.length ? Math.max(...rssNow()) : null;

  const newClient = (u: string) => new Pool(u, { connections: Math.max(...concurrencies, 64) + 8, pipelining: 1 });
  const clients = urls.map(newClient);
  const naiveClients = naive ? [newClient(naive.url)] : [];
  type Call = (method: Dispatcher.HttpMethod, path: string, token: string, body?: unknown, expect?: number[], seq?: number) => Promise<string>;
  /** With several processes, operation `seq` goes to process `seq mod n` (set-up calls to the first). */
  const callOn = (targets: Pool[]): Call => async (method, path, token, body, expect = [200, 201], seq = 0) => {
    const client = targets[seq % targets.length] as Pool;
    const res = await client.request({
      method,
      path,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    if (!expect.includes(res.statusCode)) throw new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 200)}`);
    return text;
  };
  const call = callOn(clients);
  const callNaive = callOn(naiveClients);

  // Subscriptions: the sink answers 200 at once; the exchange has one queue bound to everything.
  // Set-up retries 503s: a busy shared machine can make a just-started Herald shed load.
  const subscribe = async (topic: string, target: unknown, n: number, ordering: 'none' | 'key' = 'none') => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call('POST', '/v1/subscriptions', adminToken, { name: `bench ${topic} ${n}`, topic, target, maxAttempts: 5, backoff: { initialMs: 200, maxMs: 2_000 }, ordering });
      } catch (err) {
        if (attempt >= 10 || !/: 503 /.test((err as Error).message)) throw err;
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
  };

  const rows: BenchRow[] = [];
  /** The highest RSS any one Herald process reached since the last call. */
  const rss = () => Math.max(0, ...memories.map((m) => m.take()));
  /** CPU ms used so far by all of `of` (Herald's processes, or the naive peer's). */
  const cpuOf = (of: number[]) => {
    const each = of.map((pid) => readCpuMs(pid));
    return of.length === 0 || each.some((ms) => ms === undefined) ? undefined : each.reduce((a = 0, b = 0) => a + b, 0);
  };
  const cpuNow = () => cpuOf(pids);
  const naiveCpuNow = () => cpuOf(naive ? [naive.pid] : []);
  // The database's share of an operation: on a shared machine it competes with Herald for the
  // same cores. The server names its own pid file, so a second local server is never measured instead.
  const databasePid = /(\/\/|@)(127\.0\.0\.1|localhost|\[::1\])(:|\/|$)/.test(MYSQL_SERVER) ? await localServerPid(mysql) : undefined;
  const databaseCpuNow = () => cpuOf(databasePid ? [databasePid] : []);
  const perOp = (since: number | undefined, now: number | undefined, ops: number) =>
    since === undefined || now === undefined || ops === 0 ? null : Math.round(((now - since) / ops) * 100) / 100;
  /** Herald's and the MySQL server's CPU so far: where a window's CPU per operation is counted from. */
  const cpuMark = () => ({ herald: cpuNow(), database: databaseCpuNow() });
  const countingRedis = args.count ? new Redis(REDIS_URL) : undefined;
  const countersNow = () => (countingRedis ? snapshotCounters(mysql, countingRedis) : Promise.resolve(undefined));
  const countedPerOp = async (since: CounterSnapshot | undefined, ops: number) => {
    if (!since) return undefined;
    const counted = countersPerOp(since, (await countersNow()) as CounterSnapshot, ops);
    log(`  per op: ${counted.mysql.Questions ?? 0} MySQL statements (${Object.entries(counted.mysql).filter(([k]) => k !== 'Questions').map(([k, v]) => `${k.slice(4)} ${v}`).join(', ')}); ${counted.redisCommands} Redis commands (${Object.entries(counted.redis).map(([k, v]) => `${k} ${v}`).join(', ')})`);
    return counted;
  };

  /** Waits until every id has `copies` arrivals, or the drain time runs out. */
  async function drain(ids: Iterable<string>, arrivals: Arrivals, copies: number): Promise<void> {
    const list = [...ids];
    const deadline = performance.now() + drainMs;
    while (performance.now() < deadline) {
      if (list.every((id) => arrivals.completedAt(id, copies) !== undefined)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Throughput, delivery latency and losses of a window whose producer-side times are in `doneAt`. */
  function delivered(load: LoadResult, doneAt: Map<string, number>, arrivals: Arrivals, copies: number) {
    const latencies: number[] = [];
    let last = load.startedAt;
    let undelivered = 0;
    for (const [id, at] of doneAt) {
      const arrived = arrivals.completedAt(id, copies);
      if (arrived === undefined) {
        undelivered++;
        continue;
      }
      latencies.push(Math.max(0, arrived - at));
      last = Math.max(last, arrived);
    }
    const seconds = (Math.max(last, load.endedAt) - load.startedAt) / 1000;
    return { latency: summarize(latencies), undelivered, deliveredPerSec: (doneAt.size - undelivered) / seconds };
  }

  /** Producer-side times of one window: when each id was done, and each request's latency. */
  interface Times {
    doneAt: Map<string, number>;
    /** A pair (or one direct publish), its prepare (or publish) and its confirm, ms. */
    whole: number[];
    prepare: number[];
    confirm: number[];
  }
  const newTimes = (): Times => ({ doneAt: new Map(), whole: [], prepare: [], confirm: [] });

  /**
   * Adds a window's row to the table. The ratio takes what Herald sustained end to end — what
   * reached the endpoint or the broker's consumer — since accepting faster than it delivers only
   * builds a backlog.
   */
  function addRow(
    scenario: string,
    concurrency: BenchRow['concurrency'],
    load: LoadResult,
    d: ReturnType<typeof delivered>,
    times: Times,
    cpuStart: ReturnType<typeof cpuMark>,
    baseline: { name: string; perSec: number; latency: LatencySummary } | null | undefined,
  ): BenchRow {
    const perSec = load.ok / load.seconds;
    const row: BenchRow = {
      scenario,
      concurrency,
      heraldPerSec: perSec,
      deliveredPerSec: d.deliveredPerSec,
      errors: load.errors,
      undelivered: d.undelivered,
      latency: d.latency,
      requestLatency: summarize(times.whole),
      prepareLatency: summarize(times.prepare),
      confirmLatency: summarize(times.confirm),
      baseline: baseline?.name ?? null,
      baselinePerSec: baseline?.perSec ?? null,
      baselineLatency: baseline?.latency ?? null,
      ratio: baseline ? Math.min(perSec, d.deliveredPerSec) / baseline.perSec : null,
      rssMaxMiB: rss(),
      heraldCpuMsPerOp: perOp(cpuStart.herald, cpuNow(), load.ok),
      databaseCpuMsPerOp: perOp(cpuStart.database, databaseCpuNow(), load.ok),
      ...(load.errorSamples.length && { errorSamples: load.errorSamples }),
    };
    rows.push(row);
    return row;
  }

  /**
   * Runs the same window against the naive peer and puts its figures beside Herald's row: the
   * same load client, the same sink, delivery counted the same way, CPU read the same way.
   */
  async function naiveWindow(row: BenchRow, concurrency: number, arrivals: Arrivals, op: (times: Times) => (seq: number) => Promise<void>): Promise<void> {
    if (!naive) return;
    const times = newTimes();
    log(`  naive peer at concurrency ${concurrency}`);
    const counted = await countersNow();
    const cpuStart = naiveCpuNow();
    const databaseStart = databaseCpuNow();
    const load = await closedLoop(concurrency, durationMs, op(times));
    await drain(times.doneAt.keys(), arrivals, 1);
    const cpuEnd = naiveCpuNow();
    const databaseCpuMsPerOp = perOp(databaseStart, databaseCpuNow(), load.ok);
    const naiveCounters = await countedPerOp(counted, load.ok);
    const d = delivered(load, times.doneAt, arrivals, 1);
    const perSec = load.ok / load.seconds;
    const cpuMsPerOp = perOp(cpuStart, cpuEnd, load.ok);
    const heraldSustained = Math.min(row.heraldPerSec, row.deliveredPerSec ?? row.heraldPerSec);
    const sustained = Math.min(perSec, d.deliveredPerSec);
    const figures: NaivePeerFigures = {
      perSec,
      deliveredPerSec: d.deliveredPerSec,
      errors: load.errors,
      undelivered: d.undelivered,
      latency: d.latency,
      requestLatency: summarize(times.whole),
      prepareLatency: summarize(times.prepare),
      confirmLatency: summarize(times.confirm),
      cpuMsPerOp,
      databaseCpuMsPerOp,
      ratio: sustained > 0 ? heraldSustained / sustained : null,
      cpuRatio: cpuMsPerOp && row.heraldCpuMsPerOp !== null ? row.heraldCpuMsPerOp / cpuMsPerOp : null,
      ...(load.errorSamples.length && { errorSamples: load.errorSamples }),
      ...(naiveCounters && { counters: naiveCounters }),
    };
    row.naive = figures;
    log(`  naive ${perSec.toFixed(0)}/s, ${d.deliveredPerSec.toFixed(0)} delivered/s, ${load.errors} errors, undelivered ${d.undelivered}, CPU ${cpuMsPerOp} ms/op (MySQL server ${databaseCpuMsPerOp ?? '–'}); Herald ÷ naive ${figures.ratio?.toFixed(2)}×`);
  }

  /** prepare + confirm pairs on `topic` through `via`; each pair's confirm 200 time is kept for the latency. */
  const pairs = (topic: string, tag: string, times: Times, via: Call = call, keys = 0) => async (seq: number) => {
    const id = `${runId}-${tag.replace(/[^A-Za-z0-9_:-]/g, '_')}-${seq}`;
    const started = performance.now();
    const key = keys > 0 ? { key: `k${seq % keys}` } : {};
    await via('POST', '/v1/messages', producerToken, { id, topic, payload, checkUrl: 'http://127.0.0.1:9/check', checkAfterMs: 600_000, ...key }, [201], seq);
    const prepared = performance.now();
    await via('POST', `/v1/messages/${id}/confirm`, producerToken, undefined, [200], seq);
    const done = performance.now();
    times.doneAt.set(id, done);
    times.whole.push(done - started);
    times.prepare.push(prepared - started);
    times.confirm.push(done - prepared);
  };

  async function pairScenario(scenario: string, topic: string, copies: number, concurrency: number, baseline: { perSec: number; latency: ReturnType<typeof summarize> } | undefined, keys = 0) {
    const times = newTimes();
    log(`${scenario} at concurrency ${concurrency} for ${durationMs / 1000} s`);
    const counted = await countersNow();
    const cpuStart = cpuMark();
    const load = await closedLoop(concurrency, durationMs, pairs(topic, `${topic}-${concurrency}`, times, call, keys));
    await drain(times.doneAt.keys(), sink.arrivals, copies);
    const d = delivered(load, times.doneAt, sink.arrivals, copies);
    const row = addRow(scenario, concurrency, load, d, times, cpuStart, baseline && { name: 'MySQL INSERT+UPDATE', ...baseline });
    row.counters = await countedPerOp(counted, load.ok);
    log(`  ${row.heraldPerSec.toFixed(0)} pairs/s, ${load.errors} errors, p99 confirm→delivered ${d.latency.p99} ms, undelivered ${d.undelivered}, CPU ${row.heraldCpuMsPerOp} ms/pair (MySQL server ${row.databaseCpuMsPerOp ?? '–'})`);
    // The naive peer sends every message to one endpoint: it has a twin of the one-webhook scenario only.
    if (copies === 1 && keys === 0) await naiveWindow(row, concurrency, sink.arrivals, (t) => pairs('bench.pc', `naive-${concurrency}`, t, callNaive));
  }

  /** One direct publish (`confirm: true`) through `via`. */
  const publishes = (tag: string, times: Times, via: Call = call) => async (seq: number) => {
    const id = `${runId}-${tag}-${seq}`;
    const started = performance.now();
    await via('POST', '/v1/messages', producerToken, { id, topic: 'bench.amqp', payload, confirm: true }, [201], seq);
    const done = performance.now();
    times.doneAt.set(id, done);
    times.whole.push(done - started);
    times.prepare.push(done - started);
  };

  async function directScenario(concurrency: number) {
    log(`raw RabbitMQ confirmed publishes at concurrency ${concurrency}`);
    const raw = await rawAmqpBaseline(rawChannel, name, runId, concurrency, durationMs, payload);
    await drain(raw.publishedAt.keys(), consumer.arrivals, 1);
    const rawPerSec = raw.load.ok / raw.load.seconds;
    const times = newTimes();
    log(`direct publish → RabbitMQ at concurrency ${concurrency}`);
    const counted = await countersNow();
    const cpuStart = cpuMark();
    const load = await closedLoop(concurrency, durationMs, publishes(`amqp-${concurrency}`, times));
    await drain(times.doneAt.keys(), consumer.arrivals, 1);
    const d = delivered(load, times.doneAt, consumer.arrivals, 1);
    const row = addRow('direct publish → RabbitMQ', concurrency, load, d, times, cpuStart, { name: 'amqplib confirmed publish', perSec: rawPerSec, latency: summarize(raw.latencies) });
    row.counters = await countedPerOp(counted, load.ok);
    log(`  raw ${rawPerSec.toFixed(0)}/s; Herald ${row.heraldPerSec.toFixed(0)} accepted/s, ${d.deliveredPerSec.toFixed(0)} delivered/s, p99 ${d.latency.p99} ms, CPU ${row.heraldCpuMsPerOp} ms/msg (MySQL server ${row.databaseCpuMsPerOp ?? '–'})`);
    await naiveWindow(row, concurrency, consumer.arrivals, (t) => publishes(`naive-amqp-${concurrency}`, t, callNaive));
  }

  async function rateScenario(seconds: number, label: string, onTick?: (elapsedS: number) => void, wrap = (op: Operation) => op) {
    const times = newTimes();
    log(`${label}: ${rate} pairs/s for ${seconds} s`);
    const ticker = onTick ? setInterval(() => onTick((performance.now() - startedAt) / 1000), 10_000) : undefined;
    const startedAt = performance.now();
    const cpuStart = cpuMark();
    const load = await openLoop(rate, seconds * 1000, wrap(pairs('bench.pc', `rate-${label.replace(/\W+/g, '')}`, times)));
    clearInterval(ticker);
    await drain(times.doneAt.keys(), sink.arrivals, 1);
    const d = delivered(load, times.doneAt, sink.arrivals, 1);
    const row = addRow(`prepare+confirm at ${rate}/s → webhook`, 'open', load, d, times, cpuStart, null);
    log(`  ${row.heraldPerSec.toFixed(0)} pairs/s, ${load.errors} errors, confirm→delivered p50/p95/p99 ${d.latency.p50}/${d.latency.p95}/${d.latency.p99} ms`);
  }
  /** Rows per table (exact counts: a soak's tables are small) and messages purged so far, to show whether storage levels off. */
  const storageNow = async () => {
    const rowsByTable: Record<string, number> = {};
    for (const table of SOAK_TABLES) {
      const [r] = (await mysql.query(`SELECT COUNT(*) AS n FROM ${table}`)) as unknown as [Array<{ n: number | string }>];
      rowsByTable[table] = Number(r[0]?.n ?? 0);
    }
    let purged = 0;
    for (const h of heralds) {
      const text = await fetch(`${h.url}/metrics`).then((res) => res.text()).catch(() => '');
      purged += Number(/^herald_purged_rows_total\{table="messages"\} (\S+)$/m.exec(text)?.[1] ?? 0);
    }
    return { rows: rowsByTable, purgedMessages: purged + (comparison?.purgedMessages() ?? 0) };
  };
  type SoakSample = { s: number; rssMiB: number; rows?: Record<string, number>; purgedMessages?: number };
  const soak: { seconds: number; rate: number; samples: SoakSample[]; startMiB: number | null; endMiB: number | null; purgerComparison?: ComparisonResult } | undefined = args.soak
    ? { seconds: Number(args.soak), rate, samples: [], startMiB: null, endMiB: null }
    : undefined;
  const comparison = comparing ? await startPurgerComparison({ databaseUrl, ...comparing, heraldCpuMs: cpuNow }) : undefined;

  try {
    await subscribe('bench.pc', { type: 'webhook', url: `${sink.url}/pc` }, 1);
    await subscribe('bench.ord', { type: 'webhook', url: `${sink.url}/ord` }, 1, 'key');
    for (let i = 1; i <= 5; i++) await subscribe('bench.fan', { type: 'webhook', url: `${sink.url}/fan/${i}` }, i);
    await subscribe('bench.amqp', { type: 'rabbitmq', exchange: name }, 1);
    // Each on a topic of its own first word, as many teams' subscriptions would be.
    for (let i = 1; i <= otherSubscriptions; i++) await subscribe(`team${i}.events`, { type: 'webhook', url: `${sink.url}/other/${i}` }, i);
    // A short warm-up so JIT, pools and connections are not part of the first figure.
    await closedLoop(8, 2_000, pairs('bench.pc', 'warmup', newTimes()));
    if (naive) await closedLoop(8, 2_000, pairs('bench.pc', 'naive-warmup', newTimes(), callNaive));
    await drain([], sink.arrivals, 1);
    if (soak) {
      soak.startMiB = pids.length ? Math.max(...rssNow()) : null;
      soak.samples.push({ s: 0, rssMiB: soak.startMiB ?? 0 });
      await comparison?.begin();
      await rateScenario(soak.seconds, `soak ${soak.seconds} s`, (s) => {
        const m = pids.length ? Math.max(...rssNow()) : undefined;
        void storageNow().then((storage) => {
          soak.samples.push({ s: Math.round(s), rssMiB: m ? Math.round(m * 10) / 10 : 0, ...storage });
          const rowsText = Object.entries(storage.rows).map(([t, n]) => `${t} ${n}`).join(', ');
          log(`  soak ${Math.round(s)} s: RSS ${m?.toFixed(1)} MiB; rows: ${rowsText}; messages purged ${storage.purgedMessages}`);
        });
      }, comparison?.wrap);
      soak.endMiB = pids.length ? Math.max(...rssNow()) : null;
      if (comparison) {
        soak.purgerComparison = await comparison.finish();
        log(`purger comparison, ${comparing?.windowS} s windows from ${soak.purgerComparison.comparedFromS} s on:\n${describeComparison(soak.purgerComparison)}`);
      }
    } else {
      for (const concurrency of concurrencies) {
        let mysqlBaseline: { perSec: number; latency: ReturnType<typeof summarize> } | undefined;
        if (scenarios.has('pc') || scenarios.has('ordered') || scenarios.has('fanout')) {
          log(`raw MySQL INSERT+UPDATE at concurrency ${concurrency}`);
          const raw = await rawMysqlBaseline(mysql, runId, concurrency, durationMs, payload);
          mysqlBaseline = { perSec: raw.load.ok / raw.load.seconds, latency: summarize(raw.latencies) };
          log(`  ${mysqlBaseline.perSec.toFixed(0)} pairs/s (${raw.load.errors} errors)`);
        }
        if (scenarios.has('pc')) await pairScenario('prepare+confirm → webhook', 'bench.pc', 1, concurrency, mysqlBaseline);
        if (scenarios.has('ordered')) await pairScenario('prepare+confirm → webhook ordered by key (1,000 keys)', 'bench.ord', 1, concurrency, mysqlBaseline, 1_000);
        if (scenarios.has('fanout')) await pairScenario('prepare+confirm → 5 webhooks', 'bench.fan', 5, concurrency, mysqlBaseline);
        if (scenarios.has('direct')) await directScenario(concurrency);
      }
      if (scenarios.has('latency')) await rateScenario(Math.max(5, durationMs / 1000), 'latency');
    }
  } finally {
    for (const m of memories) m.stop();
    const ends = pids.map((pid) => readMemory(pid));
    const end = ends.every((e) => e !== undefined) && ends.length ? { rssMiB: Math.max(...ends.map((e) => e.rssMiB)), peakMiB: Math.max(...ends.map((e) => e.peakMiB)) } : undefined;
    await Promise.all([...clients, ...naiveClients].map((c) => c.close()));
    await Promise.all(heralds.map((h) => h.stop()));
    await naive?.stop();
    if (naive && naive.child.exitCode !== 0) log(`the naive peer exited with ${naive.child.exitCode}; its last output:\n${naive.output().slice(-3000)}`);
    countingRedis?.disconnect();
    await rawChannel.close().catch(() => undefined);
    await amqp.close().catch(() => undefined);
    await consumer.close();
    await sink.close();
    await mysql.end();
    if (!args['keep-database']) await dropBenchState();
    if (heralds.length && args['herald-output']) writeFileSync(resolve(args['herald-output']), heralds.map((h) => h.output()).join('\n'));
    for (const h of heralds) if (h.child.exitCode !== 0) log(`Herald (pid ${h.pid}) exited with ${h.child.exitCode}; its last output:\n${h.output().slice(-3000)}`);

    const machine = await describeMachine();
    const results = {
      at: new Date().toISOString(),
      label: args.label,
      machine,
      conditions: { entry: args.entry, processes: pids.length, roles: args.roles ?? null, nodeArgs: heralds.length ? nodeArgs : null, baselineConnections: Number(args['baseline-connections']), naivePeer: naive ? `tools/bench/naive.service.ts on ${naiveStack}, same node flags + --import tsx` : null, durationS: durationMs / 1000, concurrencies, rate, otherSubscriptions, heraldEnv: Object.fromEntries(Object.entries(heraldEnv).filter(([k]) => !/KEYS|SECRET|URL/.test(k))) },
      memory: { startMiB: startMiB, endMiB: end?.rssMiB ?? null, peakMiB: end?.peakMiB ?? null },
      soak,
      rows,
    };
    const stamp = results.at.replace(/[:.]/g, '-');
    const table = markdownTable(rows);
    writeFileSync(join(outDir, `bench-${stamp}.json`), JSON.stringify(results, null, 2));
    writeFileSync(join(outDir, 'latest.json'), JSON.stringify(results, null, 2));
    const svg = svgChart(rows, `Herald vs raw baselines, ${machine.cpus}×${machine.cpuModel}, ${results.at.slice(0, 16)}Z`);
    writeFileSync(join(outDir, `bench-${stamp}.svg`), svg);
    writeFileSync(join(outDir, 'latest.svg'), svg);
    console.log(`\n${table}\n`);
    if (rows.some((r) => r.naive)) console.log(`Herald beside the naive peer (tools/bench/naive.service.ts), same run:\n\n${naiveTable(rows)}\n`);
    console.log(
      `Herald RSS${pids.length > 1 ? ` (the highest of its ${pids.length} processes)` : ''}: start ${fmtMiB(startMiB)}, end ${fmtMiB(end?.rssMiB)}, peak (VmHWM) ${fmtMiB(end?.peakMiB)}` +
        (soak ? `; soak ${soak.seconds} s at ${soak.rate}/s: start ${fmtMiB(soak.startMiB)}, end ${fmtMiB(soak.endMiB)}` : ''),
    );
    console.log(`machine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.mysql}, Redis ${machine.redis}, RabbitMQ ${machine.rabbitmq}`);
    console.log(`results: ${join(args.out, `bench-${stamp}.json`)} and .svg`);
  }
}

const SOAK_TABLES = ['messages', 'deliveries', 'delivery_attempts', 'check_attempts'] as const;

const fmtMiB = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${v.toFixed(0)} MiB`);

/** Drops the benchmark's database, its BullMQ keys (its own prefix only) — nothing shared. */
async function dropBenchState(): Promise<void> {
  const c = await createConnection(MYSQL_SERVER);
  await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await c.end();
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  await redis.connect();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${name}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
}

async function describeMachine() {
  const c = await createConnection(MYSQL_SERVER);
  const [rows] = await c.query('SELECT VERSION() AS v');
  await c.end();
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  await redis.connect();
  const info = await redis.info('server');
  redis.disconnect();
  const amqp = await connect(AMQP_URL);
  const serverProperties = (amqp as unknown as { connection: { serverProperties?: { version?: string } } }).connection.serverProperties;
  await amqp.close();
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    mysql: String((rows as Array<{ v: string }>)[0]?.v ?? 'unknown'),
    redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
    rabbitmq: serverProperties?.version ?? 'unknown',
    kernel: readFileSync('/proc/version', 'utf8').split(' ')[2] ?? 'unknown',
  };
}

main().catch((err: unknown) => {
  console.error('bench failed:', err instanceof Error ? err.stack : err);
  process.exit(1);
});
