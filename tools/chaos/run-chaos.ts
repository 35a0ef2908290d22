// The chaos suite: three Herald replicas on a MariaDB, Redis and RabbitMQ of the run's own,
// two tenants' producer loads (some ids used by both) with faults injected underneath them,
// then the invariant checker, which accounts for each tenant's messages separately.
//   npm run test:chaos               5,000 messages, every process fault twice (what CI runs)
//   npm run test:chaos -- --quick    1,500 messages, every process fault once (for development)
//   --messages N --duration S --rounds R   a custom size; --keep keeps the logs and data
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createPool, type Pool } from 'mysql2/promise';
import { consumerMessageId } from '@herald/domain';
import { ApiClient, mergeTallies } from './herald-api.client';
import { AmqpRecorder } from './amqp.recorder';
import { CheckEndpoint } from './check.endpoint';
import { WebhookEndpoint, type EndpointMode, type FaultCounts } from './webhook.endpoint';
import { injectFault, PROCESS_FAULTS, type FaultRecord, type ProcessFault } from './fault.injector';
import { checkInvariants, checkKeyOrder, type DeliveryRow, type StoredMessageRow } from './invariant.checker';
import { checkAnswer, LoadGenerator, type Producer } from './load.generator';
import { HeraldReplica } from './herald.replica';
import { faultRows, renderTable, type ChaosResult } from './chaos.report';
import { freePort, PrivateMariaDb, PrivateRabbitMq, PrivateRedis } from '@herald/test-support';

// Run-local credentials for throwaway services; they guard nothing outside this run.
const ADMIN_TOKEN = 'chaos-admin-token-000000000000000';
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;
/**
 * Two teams, each with its own producer key and check secret (from the keys file). `default`
 * keeps bare delivery ids, `payments` gets `payments/<id>`: both forms are exercised. The global
 * HERALD_CHECK_SECRET is a third secret neither endpoint accepts, so a check call signed with
 * it instead of its tenant's is caught.
 */
const TENANTS = [
  { tenant: 'default', name: 'orders', token: 'chaos-orders-token-00000000000000', checkSecret: newSecret() },
  { tenant: 'payments', name: 'payments', token: 'chaos-payments-token-000000000000', checkSecret: newSecret() },
] as const;
const CHECK_SECRET = newSecret();
/** Share of each tenant's messages that reuse an id the other tenant prepared. */
const SHARED_ID_RATE = 0.3;
const QUEUE_PREFIX = 'chaos';
const REPLICAS = 3;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => console.log(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`);

const { values: args } = parseArgs({
  options: {
    // The full run is the default; --full is accepted for explicitness.
    full: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    messages: { type: 'string' },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const mode: ChaosResult['mode'] = args.messages || args.duration || args.rounds ? 'custom' : args.quick ? 'reduced' : 'full';
const full = mode === 'full';
const MESSAGES = Number(args.messages ?? (full ? 5_000 : 1_500));
const DURATION_MS = Number(args.duration ?? (full ? 150 : 70)) * 1000;
const ROUNDS = Number(args.rounds ?? (full ? 2 : 1));
const CONVERGE_DEADLINE_MS = 240_000;
if (![MESSAGES, DURATION_MS, ROUNDS].every((n) => Number.isInteger(n) && n > 0)) {
  console.error('--messages, --duration and --rounds take whole numbers above 0');
  process.exit(2);
}

async function main(): Promise<number> {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'herald-chaos-'));
  const ports = new Set<number>();
  const port = () => freePort(ports);
  const cleanups: Array<() => Promise<void> | void> = [];
  const killers: Array<() => void> = [];
  // Whatever happens (an exception, Ctrl-C), no private process outlives the run.
  const killAll = () => {
    killers.forEach((k) => k());
    if (!args.keep) rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

  const apis: ApiClient[] = [];
  let pool: Pool | undefined;
  const replicas: HeraldReplica[] = [];
  try {
    log(`${mode} run: ${MESSAGES} messages over ${DURATION_MS / 1000} s, ${ROUNDS} round(s) of process faults; private services under ${dir}`);
    const [mariaPort, redisPort, rabbitPort, rabbitDist] = await Promise.all([port(), port(), port(), port()]);
    const redis = new PrivateRedis(dir, redisPort!);
    const rabbit = new PrivateRabbitMq(join(dir, 'rabbitmq'), rabbitPort!, rabbitDist!);
    killers.push(() => redis.killNow(), () => rabbit.killNow());
    cleanups.push(() => rabbit.stop());
    const [mariadb] = await Promise.all([
      PrivateMariaDb.create(join(dir, 'mariadb'), mariaPort!).then((db) => {
        killers.push(() => db.killNow());
        return db;
      }),
      redis.start(),
      rabbit.start(),
    ]);
    log(`MariaDB :${mariadb.port}, Redis :${redis.port}, RabbitMQ :${rabbit.port} (node ${rabbit.node}) up`);

    // Endpoints: a healthy one, one per failure mode, a broken one (its deliveries die), probes.
    const counts: FaultCounts = { slow: 0, timeout: 0, reset: 0, flapDown: 0, retryLatencies: { timeout: [], reset: [] }, flapRecoveries: [] };
    const endpointSpecs: Array<[string, EndpointMode, string, number?]> = [
      ['healthy', 'healthy', 'order.#'],
      ['slow', 'slow', '*.paid'],
      ['timeout', 'timeout', 'order.shipped'],
      ['reset', 'reset', 'user.*'],
      ['flap', 'flap', '#.created'],
      ['broken', 'broken', 'audit.#', 2],
      ['probe', 'healthy', 'probe.#'],
      // Ordered per key (below): resets make heads retry while later messages of their key wait.
      ['ordered', 'reset', '#', 100],
    ];
    const endpoints = new Map<string, WebhookEndpoint>();
    for (const [name, endpointMode] of endpointSpecs) {
      const endpoint = new WebhookEndpoint(name, endpointMode, await port(), counts);
      await endpoint.start();
      endpoints.set(name, endpoint);
      cleanups.push(() => endpoint.close());
    }
    const orders = new AmqpRecorder(rabbit.url, 'chaos.orders');
    const probes = new AmqpRecorder(rabbit.url, 'chaos.probes');
    await Promise.all([orders.start(), probes.start()]);
    cleanups.push(() => orders.close(), () => probes.close());

    const runId = `c${randomBytes(3).toString('hex')}`;
    const checkPort = await port();
    const keysFile = join(dir, 'keys.json');
    writeFileSync(keysFile, JSON.stringify({ keys: TENANTS.map(({ name, tenant, token, checkSecret }) => ({ name, role: 'producer', tenant, token, checkSecret })) }));

    // Three replicas on one database, one Redis, one broker; short policies so the run converges.
    const databaseUrl = `${mariadb.url}/herald_chaos`;
    const env = {
      DATABASE_URL: databaseUrl,
      REDIS_URL: redis.url,
      AMQP_URL: rabbit.url,
      HERALD_API_KEYS: `ops:admin:${ADMIN_TOKEN}`,
      HERALD_API_KEYS_FILE: keysFile,
      HERALD_QUEUE_PREFIX: QUEUE_PREFIX,
      HERALD_ALLOW_PRIVATE_URLS: 'true',
      HERALD_CHECK_SECRET: CHECK_SECRET,
      HERALD_LOG_LEVEL: 'warn',
      HERALD_DB_POOL_SIZE: '10',
      HERALD_SHUTDOWN_TIMEOUT_MS: '5000',
      HERALD_CHECK_SWEEP_INTERVAL_MS: '250',
      HERALD_CHECK_TIMEOUT_MS: '2000',
      HERALD_CHECK_INTERVAL_CAP_MS: '2000',
      HERALD_WEBHOOK_TIMEOUT_MS: '1500',
      HERALD_AMQP_CONFIRM_TIMEOUT_MS: '2000',
      HERALD_RECONCILE_INTERVAL_MS: '500',
      HERALD_RECONCILE_GRACE_MS: '500',
    };
    for (let i = 0; i < REPLICAS; i++) {
      const replica = new HeraldReplica(`herald-${i + 1}`, await port(), env, dir);
      replicas.push(replica);
      killers.push(() => replica.killNow());
    }
    await Promise.all(replicas.map((r) => r.start()));
    log(`${REPLICAS} Herald replicas ready: ${replicas.map((r) => r.url).join(', ')}`);

    // Like a load balancer that has not noticed yet: requests go to a killed replica too, see the
    // connection refused, and are retried on the next one.
    const liveUrls = () => replicas.map((r) => r.url);
    const check = new CheckEndpoint(
      checkPort,
      new Map(TENANTS.map((t) => [t.tenant, t.checkSecret])),
      (tenant, id, n) => checkAnswer(generator.plans.get(consumerMessageId(tenant, id)), n),
    );
    const producers: Producer[] = TENANTS.map((t) => ({ tenant: t.tenant, api: new ApiClient(liveUrls, t.token), checkUrl: check.urlFor(t.tenant) }));
    apis.push(...producers.map((p) => p.api));
    const admin = new ApiClient(liveUrls, ADMIN_TOKEN);
    cleanups.push(() => admin.close());

    const subscriptions: Array<{ id: string; name: string; topic: string }> = [];
    const receipts = new Map<string, ReadonlyMap<string, number>>();
    const forged = new Map<string, ReadonlyMap<string, number>>();
    const wrongTenant = new Map<string, ReadonlyMap<string, number>>();
    const subscribe = async (name: string, topic: string, target: object, maxAttempts = 40, backoff = { initialMs: 200, maxMs: 2_000 }) => {
      const ordering = name === 'ordered' ? 'key' : 'none';
      const res = await admin.call('POST', '/v1/subscriptions', { name, topic, target, maxAttempts, backoff, ordering });
      if (res?.status !== 201) throw new Error(`creating subscription ${name}: ${res?.status} ${JSON.stringify(res?.body)}`);
      const { id, secret } = res.body as { id: string; secret?: string };
      subscriptions.push({ id, name, topic });
      return { id, secret };
    };
    for (const [name, , topic, maxAttempts] of endpointSpecs) {
      const endpoint = endpoints.get(name)!;
      const { id, secret } = await subscribe(name, topic, { type: 'webhook', url: endpoint.url }, maxAttempts, maxAttempts && maxAttempts < 10 ? { initialMs: 100, maxMs: 200 } : undefined);
      if (secret) endpoint.secret = secret;
      receipts.set(id, endpoint.receipts.ok);
      forged.set(id, endpoint.receipts.forged);
      wrongTenant.set(id, endpoint.receipts.wrongTenant);
    }
    for (const [name, topic, recorder] of [['rabbit-orders', 'order.#', orders], ['rabbit-probes', 'probe.#', probes]] as const) {
      const { id } = await subscribe(name, topic, { type: 'rabbitmq', exchange: recorder.exchange });
      receipts.set(id, recorder.ok);
      wrongTenant.set(id, recorder.wrongTenant);
    }

    const generator = new LoadGenerator(producers, { messages: MESSAGES, durationMs: DURATION_MS, concurrency: 24, runId, sharedIdRate: SHARED_ID_RATE });
    await check.start();
    cleanups.push(() => check.close());

    // Recovery is timed by a message published after the fault: until it reached both its
    // webhook and its queue, Herald has not recovered.
    const probeHook = endpoints.get('probe')!;
    const probe = async (via?: HeraldReplica) => {
      const plan = generator.newPlan('probe', 'probe.ping');
      const deadline = Date.now() + 120_000;
      while (!(await generator.direct(plan, via?.url))) if (Date.now() > deadline) throw new Error('probe not accepted within 120 s');
      while (!(probeHook.receipts.ok.has(plan.deliveryId) && probes.ok.has(plan.deliveryId))) {
        if (Date.now() > deadline) throw new Error('probe not delivered within 120 s');
        await sleep(50);
      }
    };

    const schedule: ProcessFault[] = [];
    for (let r = 0; r < ROUNDS; r++) schedule.push(...[...PROCESS_FAULTS].sort(() => Math.random() - 0.5));
    const faultLog: FaultRecord[] = [];
    const loadStarted = Date.now();
    const injector = (async () => {
      const gap = DURATION_MS / (schedule.length + 1);
      for (const [i, fault] of schedule.entries()) {
        const due = loadStarted + (i + 1) * gap;
        if (due > Date.now()) await sleep(due - Date.now());
        log(`fault ${i + 1}/${schedule.length}: ${fault}`);
        try {
          const record = await injectFault(fault, { replicas, mariadb, redis, rabbit, queuePrefix: QUEUE_PREFIX }, probe);
          faultLog.push(record);
          log(`  ${record.detail ? `${record.detail}; ` : ''}down ${(record.downMs / 1000).toFixed(1)} s, recovered after ${(record.recoveryMs / 1000).toFixed(1)} s`);
        } catch (err) {
          faultLog.push({ fault, detail: (err as Error).message, at: Date.now(), downMs: 0, recoveryMs: -1 });
          log(`  did not recover: ${(err as Error).message}`);
        }
      }
    })();
    const progress = setInterval(() => log(`load: ${generator.plans.size} messages started (${generator.sharedIds.size} ids in both tenants), API ${JSON.stringify(mergeTallies(apis.map((a) => a.tally)).byStatus)}`), 15_000);
    await Promise.all([generator.run(), injector]);
    clearInterval(progress);
    const loadEnded = Date.now();
    log(`load done: ${generator.plans.size} messages in ${((loadEnded - loadStarted) / 1000).toFixed(1)} s; faults over, waiting for convergence`);
    await Promise.all([...endpoints.values()].map((e) => e.settle()));

    // Converged: nothing undecided, nothing pending, and the receivers have stopped counting.
    pool = createPool({ uri: databaseUrl, connectionLimit: 2 });
    const db = pool;
    const totalReceipts = () => [...receipts.values()].reduce((sum, m) => sum + [...m.values()].reduce((a, b) => a + b, 0), 0);
    const deadline = Date.now() + CONVERGE_DEADLINE_MS;
    let lastReceipts = -1;
    for (;;) {
      const [[open]] = (await db.query("SELECT (SELECT COUNT(*) FROM messages WHERE status IN ('prepared', 'unresolved')) AS undecided, (SELECT COUNT(*) FROM deliveries WHERE status = 'pending') AS pending")) as unknown as [[{ undecided: number; pending: number }]];
      const now = totalReceipts();
      if (Number(open.undecided) === 0 && Number(open.pending) === 0 && now === lastReceipts) break;
      if (Date.now() > deadline) {
        log(`not converged within ${CONVERGE_DEADLINE_MS / 1000} s: ${open.undecided} undecided, ${open.pending} pending; checking anyway`);
        break;
      }
      lastReceipts = now;
      await sleep(2_000);
    }
    const convergedS = (Date.now() - loadEnded) / 1000;
    log(`converged ${convergedS.toFixed(1)} s after the load; checking invariants`);

    const [messageRows] = (await db.query('SELECT tenant, id, status FROM messages')) as unknown as [StoredMessageRow[]];
    // Deliveries name their message by seq; the join gives each its tenant.
    const [deliveryRows] = (await db.query('SELECT m.tenant, d.message_id AS messageId, d.subscription_id AS subscriptionId, d.status FROM deliveries d JOIN messages m ON m.seq = d.message_seq')) as unknown as [DeliveryRow[]];
    // Dead deliveries must be visible to a person: ask the API, as one would, naming the tenant
    // (an id two tenants hold is otherwise 409).
    const deadVisible = new Set<string>();
    const deadByMessage = new Map<string, { tenant: string; id: string; subs: string[] }>();
    for (const d of deliveryRows) {
      if (d.status !== 'dead') continue;
      const key = consumerMessageId(d.tenant, d.messageId);
      const entry = deadByMessage.get(key) ?? { tenant: d.tenant, id: d.messageId, subs: [] };
      entry.subs.push(d.subscriptionId);
      deadByMessage.set(key, entry);
    }
    const deadKeys = [...deadByMessage.keys()];
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let key = deadKeys.pop(); key !== undefined; key = deadKeys.pop()) {
        const { tenant, id, subs } = deadByMessage.get(key)!;
        const res = await admin.call('GET', `/v1/messages/${id}?tenant=${tenant}`);
        const body = res?.body as { tenant?: string; status?: string; deliveries?: Array<{ subscriptionId: string; status: string }> } | undefined;
        if (res?.status !== 200 || body?.status !== 'failed' || body.tenant !== tenant) continue;
        for (const sub of subs) if (body.deliveries?.some((d) => d.subscriptionId === sub && d.status === 'dead')) deadVisible.add(`${key}|${sub}`);
      }
    }));

    const invariants = checkInvariants({
      plans: generator.plans,
      messages: messageRows,
      deliveries: deliveryRows,
      subscriptions,
      receipts,
      deadVisible,
      forged,
      wrongTenant,
      refusedChecks: check.refused,
    });
    // Per-key order at the ordered subscription: each key's deliveries in commit (id) order.
    const orderedSub = subscriptions.find((x) => x.name === 'ordered')!;
    const [orderRows] = (await db.query('SELECT m.tenant, d.message_id AS messageId, d.order_key AS orderKey FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE d.subscription_id = ? AND d.order_key IS NOT NULL ORDER BY d.id', [orderedSub.id])) as unknown as [Array<{ tenant: string; messageId: string; orderKey: string }>];
    const sequences = new Map<string, string[]>();
    for (const r of orderRows) sequences.set(r.orderKey, [...(sequences.get(r.orderKey) ?? []), consumerMessageId(r.tenant, r.messageId)]);
    const orderViolations = checkKeyOrder(sequences, endpoints.get('ordered')!.arrivals);
    const ordering = { keys: sequences.size, orderedDeliveries: orderRows.length, longestKey: Math.max(0, ...[...sequences.values()].map((v) => v.length)), violations: orderViolations.length };
    log(`per-key order: ${JSON.stringify(ordering)}`);
    const checkCalls = Object.fromEntries([...check.calls].map(([tenant, calls]) => [tenant, [...calls.values()].reduce((a, b) => a + b, 0)]));
    // Both tenants must have been exercised where they differ: shared ids and signed check calls.
    const tenancyExercised = invariants.sharedIds > 0 && TENANTS.every((t) => (checkCalls[t.tenant] ?? 0) > 0);
    const passed = invariants.lost.length === 0 && invariants.phantom.length === 0 && invariants.impossible.length === 0 && faultLog.every((f) => f.recoveryMs >= 0) && invariants.messages >= MESSAGES && tenancyExercised && orderViolations.length === 0 && ordering.longestKey > 1;
    const result: ChaosResult = {
      mode,
      startedAt: new Date(started).toISOString(),
      durationS: (Date.now() - started) / 1000,
      replicas: REPLICAS,
      faults: faultRows(faultLog, counts),
      invariants: { ...invariants, lost: invariants.lost.length, phantom: invariants.phantom.length, impossible: invariants.impossible.length },
      findings: { lost: invariants.lost.slice(0, 50), phantom: invariants.phantom.slice(0, 50), impossible: invariants.impossible.slice(0, 50) },
      api: mergeTallies(apis.map((a) => a.tally)),
      checkCalls,
      ordering,
      orderViolations: orderViolations.slice(0, 50),
      serverErrors: replicas.flatMap((r) => r.errors()),
      convergedS,
      passed,
    };
    const resultsDir = fileURLToPath(new URL('./results', import.meta.url));
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(join(resultsDir, `${mode}.json`), `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\n${renderTable(result)}\n`);
    if (!passed) {
      for (const [kind, list] of Object.entries(result.findings)) for (const f of list.slice(0, 10)) console.error(`${kind}: ${JSON.stringify(f)}`);
      for (const f of orderViolations.slice(0, 10)) console.error(`ordering: ${JSON.stringify(f)}`);
      for (const r of replicas) console.error(`--- ${r.name} log tail ---\n${r.tail(15)}`);
    }
    return passed ? 0 : 1;
  } finally {
    await pool?.end().catch(() => undefined);
    await Promise.all(apis.map((a) => a.close().catch(() => undefined)));
    await Promise.all(replicas.map((r) => r.kill()));
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
    killAll();
    if (args.keep) log(`kept ${dir}`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('chaos run failed:', err);
    process.exit(1);
  },
);
