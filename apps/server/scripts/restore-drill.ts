/**
 * Backup and restore drill: Herald under load on one database, `mysqldump --single-transaction`
 * taken mid-load, the dump restored into a new database, Herald started on it. Prints what each
 * class of message became. `npx tsx apps/server/scripts/restore-drill.ts`; it creates its own
 * databases and queue prefixes and removes them afterwards (the dump file is kept in /tmp).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createConnection } from 'mysql2/promise';
import { Redis } from 'ioredis';
import { migrate } from '@herald/db';
import { buildApp } from '../src/app';
import { parseConfig } from '../src/config';

const MYSQL = { host: '127.0.0.1', port: '3306', user: 'root' };
const SERVER = `mysql://${MYSQL.user}@${MYSQL.host}:${MYSQL.port}`;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TOKEN = `drill-admin-${randomBytes(12).toString('hex')}`;
const run = randomBytes(3).toString('hex');
const N = 40;

const log = (text: string) => console.log(`[drill ${new Date().toISOString().slice(11, 19)}] ${text}`);

/** The consumer: counts deliveries per message id. And the producer's check endpoint: always commit. */
async function endpoints() {
  const deliveries = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/check') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"commit"}');
      const id = String(req.headers['webhook-id']);
      deliveries.set(id, (deliveries.get(id) ?? 0) + 1);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { deliveries, base, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function startHerald(database: string, prefix: string): Promise<{ app: FastifyInstance; url: string }> {
  const app = await buildApp(
    parseConfig({
      DATABASE_URL: `${SERVER}/${database}`,
      REDIS_URL,
      HERALD_API_KEYS: `drill:admin:${TOKEN}`,
      HERALD_QUEUE_PREFIX: prefix,
      HERALD_ALLOW_PRIVATE_URLS: 'true',
      HERALD_CHECK_SECRET: 'whsec_ZHJpbGwtb25seS1jaGVjay1zZWNyZXQtMDEyMzQ1Njc4OQ==',
      HERALD_CHECK_SWEEP_INTERVAL_MS: '500',
      HERALD_LOG_LEVEL: 'warn',
      // A drill on a shared machine: no load shedding or rate limit in the way.
      HERALD_MAX_EVENT_LOOP_DELAY_MS: '0',
      HERALD_RATE_LIMIT_PER_MINUTE: '0',
    }),
    { logger: false },
  );
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url };
}

async function api(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined && { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const answer = { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  if (method !== 'GET' && res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
  return answer;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `done()` (at most 60 s: a drill that stalls says so rather than hang). */
async function until(what: string, done: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(100);
  }
}

async function main() {
  const source = `herald_drill_a_${run}`;
  const restored = `herald_drill_b_${run}`;
  const dumpFile = `/tmp/herald-drill-${run}.sql`;
  const ep = await endpoints();
  await migrate({ url: `${SERVER}/${source}` });
  const a = await startHerald(source, `herald_drill_a_${run}`);
  let b: Awaited<ReturnType<typeof startHerald>> | undefined;
  let aOpen = true;
  try {
    const sub = await api(a.url, 'POST', '/v1/subscriptions', { name: 'drill', topic: 'drill.#', target: { type: 'webhook', url: `${ep.base}/hook` } });
    if (sub.status !== 201) throw new Error(`subscription: ${sub.status} ${JSON.stringify(sub.json)}`);
    log(`Herald started on ${source}; ${N} messages per class`);
    const prepare = (url: string, id: string, confirm = false) => api(url, 'POST', '/v1/messages', { id, topic: 'drill.order', payload: { id }, ...(confirm ? { confirm: true } : { checkUrl: `${ep.base}/check`, checkAfterMs: 10_000 }) });
    const ids = (cls: string) => Array.from({ length: N }, (_, i) => `${cls}-${run}-${i}`);

    // Before the dump: delivered, and prepared (to be confirmed after it).
    for (const id of ids('delivered-before')) await prepare(a.url, id, true);
    for (const id of ids('confirmed-after')) await prepare(a.url, id);
    await until('the first deliveries', () => ids('delivered-before').every((id) => ep.deliveries.has(id)));

    // Load during the dump: prepare + confirm pairs back to back.
    let loading = true;
    let loadSeq = 0;
    const load = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (loading) {
          const id = `load-${run}-${loadSeq++}`;
          await prepare(a.url, id);
          await api(a.url, 'POST', `/v1/messages/${id}/confirm`);
        }
      }),
    );
    await sleep(500);
    log(`mysqldump --single-transaction ${source} (under load)`);
    const dump = execFileSync('mysqldump', ['-h', MYSQL.host, '-P', MYSQL.port, '-u', MYSQL.user, '--single-transaction', '--routines', '--events', source], { maxBuffer: 1 << 30 });
    writeFileSync(dumpFile, dump);
    await sleep(300);
    loading = false;
    await load;

    // After the dump: the prepared ones are confirmed (and delivered), new messages come and stay prepared.
    for (const id of ids('confirmed-after')) await api(a.url, 'POST', `/v1/messages/${id}/confirm`);
    for (const id of ids('published-after')) await prepare(a.url, id, true);
    for (const id of ids('prepared-after')) await prepare(a.url, id);
    await until('the deliveries after the dump', () => [...ids('confirmed-after'), ...ids('published-after')].every((id) => ep.deliveries.has(id)));
    const deliveredInA = new Map(ep.deliveries);
    await a.app.close();
    aOpen = false;
    log(`source stopped; restoring the dump into ${restored}`);

    const c = await createConnection(SERVER);
    await c.query(`CREATE DATABASE \`${restored}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    await c.end();
    execFileSync('mysql', ['-h', MYSQL.host, '-P', MYSQL.port, '-u', MYSQL.user, restored], { input: readFileSync(dumpFile) });
    const restoredDb = await createConnection(`${SERVER}/${restored}`);
    for (const cls of ['delivered-before', 'confirmed-after', 'published-after', 'prepared-after', 'load']) {
      const [rows] = (await restoredDb.query('SELECT status, COUNT(*) AS n FROM messages WHERE id LIKE ? GROUP BY status ORDER BY status', [`${cls}-${run}-%`])) as unknown as [Array<{ status: string; n: number }>];
      log(`  in the dump ${cls}: ${rows.map((r) => `${r.n} ${r.status}`).join(', ') || 'none'}`);
    }
    await restoredDb.end();
    // An empty Redis for the restored Herald, as after losing it: MySQL alone rebuilds the schedule.
    b = await startHerald(restored, `herald_drill_b_${run}`);
    log('Herald started on the restored database');

    const statusIn = async (id: string) => {
      const r = await api(b!.url, 'GET', `/v1/messages/${id}`);
      return r.status === 404 ? 'gone (404)' : String(r.json.status);
    };
    const summary = async (cls: string, list = ids(cls)) => {
      const counts = new Map<string, number>();
      for (const id of list) {
        const status = await statusIn(id);
        counts.set(status, (counts.get(status) ?? 0) + 1);
      }
      const again = list.filter((id) => (ep.deliveries.get(id) ?? 0) > (deliveredInA.get(id) ?? 0)).length;
      return `${[...counts].map(([s, n]) => `${n} ${s}`).join(', ')}; delivered again after the restore: ${again}`;
    };
    const classes = ['delivered-before', 'confirmed-after', 'published-after', 'prepared-after'];
    for (const cls of classes) log(`  at start   ${cls}: ${await summary(cls)}`);
    // Check-back (10 s after each prepare) resolves the prepared ones, the reconciler sends the
    // pending deliveries Redis never knew about: wait until every message is delivered or gone.
    const loadIds = Array.from({ length: loadSeq }, (_, i) => `load-${run}-${i}`);
    const all = [...classes.flatMap((cls) => ids(cls)), ...loadIds];
    await until('every message delivered or gone', async () => (await Promise.all(all.map(statusIn))).every((st) => st === 'delivered' || st.startsWith('gone')));
    for (const cls of classes) log(`  settled    ${cls}: ${await summary(cls)}`);
    log(`  load during the dump (${loadSeq} pairs): ${await summary('load', loadIds)}`);
  } finally {
    if (aOpen) await a.app.close();
    await b?.app.close();
    await ep.close();
    const c = await createConnection(SERVER);
    for (const db of [source, restored]) await c.query(`DROP DATABASE IF EXISTS \`${db}\``);
    await c.end();
    const redis = new Redis(REDIS_URL);
    for (const prefix of [`herald_drill_a_${run}`, `herald_drill_b_${run}`]) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
    }
    redis.disconnect();
    log(`done; the dump is ${dumpFile}`);
  }
}

await main();
