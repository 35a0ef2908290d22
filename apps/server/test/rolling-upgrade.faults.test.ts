import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createConnection } from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startCheckEndpoint, startWebhookSink, waitFor } from '@herald/test-support';
import { ADMIN_TOKEN, PRODUCER_TOKEN, createTestDatabase, testEnv } from './helpers';
import { startServer, type RunningServer } from './server-process';

const run = promisify(execFile);

/**
 * The release the upgrade starts from: a fixed commit, so every migration and change made after
 * it is exercised against a build that knows nothing of them. Move it to the previous release
 * when cutting one (its dependencies must still be those of node_modules).
 */
const OLD_RELEASE = '8a290319d49a8f8f1f65cdb660c384685a886f12';

const dir = mkdtempSync(join(tmpdir(), 'herald-upgrade-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Builds `commit` as its own build script does, from `git archive` (a copy of its files; no
 * worktree is registered in the repository), with this checkout's node_modules.
 */
async function buildRelease(commit: string): Promise<string> {
  await run('git', ['-C', REPO_ROOT, 'cat-file', '-e', `${commit}^{commit}`]).catch(() => {
    throw new Error(`commit ${commit} is not in this clone: the rolling-upgrade test needs the history (a shallow clone lacks it)`);
  });
  const root = join(dir, commit.slice(0, 10));
  await run('bash', ['-c', 'mkdir -p "$3" && git -C "$1" archive --format=tar "$2" | tar -x -C "$3"', '_', REPO_ROOT, commit, root]);
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'));
  await run(process.execPath, ['apps/server/build.mjs'], { cwd: root });
  return join(root, 'dist/apps/server/main.js');
}

async function migrations(databaseUrl: string): Promise<string[]> {
  const c = await createConnection(databaseUrl);
  try {
    const [rows] = await c.query('SELECT name FROM herald_migrations ORDER BY name');
    return (rows as Array<{ name: string }>).map((r) => r.name);
  } finally {
    await c.end();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rolling upgrade', () => {
  it('an old and a new build serve one database side by side under load, and nothing is lost or delivered wrongly', async () => {
    const oldEntry = await buildRelease(OLD_RELEASE);
    const db = await createTestDatabase('upgrade', { migrate: false });
    // One environment for every process: the same database and the same queue prefix.
    const env = testEnv(db.url, { HERALD_RECONCILE_INTERVAL_MS: '500', HERALD_RECONCILE_GRACE_MS: '1000', HERALD_CHECK_SWEEP_INTERVAL_MS: '500' });
    const sink = await startWebhookSink();
    const answers = new Map<string, string>();
    const checks = await startCheckEndpoint(answers);
    const processes: RunningServer[] = [];
    try {
      const old1 = await startServer(env, { entry: oldEntry });
      processes.push(old1);
      const oldSchema = await migrations(db.url);
      const topic = `upgrade.${randomBytes(3).toString('hex')}`;
      const sub = await fetch(`${old1.url}/v1/subscriptions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'upgrade', topic, maxAttempts: 20, backoff: { initialMs: 200, maxMs: 1_000 }, target: { type: 'webhook', url: sink.url() } }),
      });
      expect(sub.status, await sub.text()).toBe(201);

      // The load balancer's view: the processes taking requests now. A message is prepared on one
      // process and confirmed (or cancelled) on the next, so calls cross versions.
      let serving: string[] = [old1.url];
      const committed: string[] = [];
      const cancelled: string[] = [];
      const failures: string[] = [];
      let stop = false;
      let seq = 0;
      const call = async (url: string, path: string, body: unknown, expected: number) => {
        const res = await fetch(`${url}${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${PRODUCER_TOKEN}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        if (res.status !== expected) throw new Error(`${path} on ${url}: ${res.status} ${text.slice(0, 200)}`);
      };
      const producer = async () => {
        while (!stop) {
          const i = seq++;
          const id = `up-${randomBytes(5).toString('hex')}-${i}`;
          const at = serving;
          const first = at[i % at.length] as string;
          const second = at[(i + 1) % at.length] as string;
          try {
            // One in ten is left prepared for check-back to resolve (commit), whichever process sweeps.
            const kind = i % 10 === 0 ? 'check' : i % 5 === 1 ? 'cancel' : 'confirm';
            if (kind === 'check') answers.set(id, 'commit');
            await call(first, '/v1/messages', { id, topic, payload: { i }, checkUrl: checks.url('/check'), checkAfterMs: kind === 'check' ? 500 : 600_000 }, 201);
            if (kind === 'check') committed.push(id);
            else if (kind === 'cancel') {
              await call(second, `/v1/messages/${id}/cancel`, undefined, 200);
              cancelled.push(id);
            } else {
              await call(second, `/v1/messages/${id}/confirm`, undefined, 200);
              committed.push(id);
            }
          } catch (err) {
            failures.push((err as Error).message);
          }
        }
      };
      const load = Promise.all(Array.from({ length: 4 }, producer));

      await sleep(2_000);
      // The new build starts mid-load, migrates the database the old one is serving, and joins.
      const next = await startServer(env);
      processes.push(next);
      const newSchema = await migrations(db.url);
      serving = [old1.url, next.url];
      await sleep(2_000);
      // An old process (re)started after the migration, as a rescheduled pod would be, still works.
      const old2 = await startServer(env, { entry: oldEntry });
      processes.push(old2);
      serving = [old1.url, next.url, old2.url];
      await sleep(2_000);
      // The old processes leave the load balancer, then drain and stop; the new one carries on alone.
      serving = [next.url];
      await sleep(200);
      await Promise.all([old1.stop(), old2.stop()]);
      const oldExits = await Promise.all([old1.exited, old2.exited]);
      await sleep(2_000);
      stop = true;
      await load;

      console.log(
        `[fault] rolling upgrade from ${OLD_RELEASE.slice(0, 7)}: migrations the new build applied ${JSON.stringify(newSchema.filter((m) => !oldSchema.includes(m)))}; ` +
          `${committed.length} committed, ${cancelled.length} cancelled, ${failures.length} failed calls`,
      );
      expect(failures.length, `failed calls, e.g.:\n${failures.slice(0, 5).join('\n')}`).toBe(0);
      expect(oldExits).toEqual([
        { code: 0, signal: null },
        { code: 0, signal: null },
      ]);
      expect(committed.length).toBeGreaterThan(50);
      const deliveredIds = () => new Set(sink.hits.map((h) => String(h.headers['webhook-id'])));
      await waitFor(() => committed.every((id) => deliveredIds().has(id)) || undefined, 'every committed message delivered', 60_000).catch(() => {
        const lost = committed.filter((id) => !deliveredIds().has(id));
        throw new Error(`${lost.length} of ${committed.length} committed messages never delivered, e.g. ${lost.slice(0, 5).join(', ')}`);
      });
      const delivered = deliveredIds();
      expect(cancelled.filter((id) => delivered.has(id))).toEqual([]);
      expect(newSchema.length).toBeGreaterThanOrEqual(oldSchema.length);
    } finally {
      await Promise.all(processes.map((p) => p.kill()));
      await sink.close();
      await checks.close();
      await db.drop();
    }
  }, 240_000);
});
