import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection, type Pool } from 'mysql2/promise';
import { CheckRepository, createDatabasePool, createDb, DeliveryRepository, MessageRepository, migrate } from './index';
import { defaultMigrationsDir } from './migrator';

// Upgrading a database of the release before tenants (0001–0004, 0006 and 0007) must lose nothing:
// 0005 runs after 0006 and 0007 there, and the messages, their deliveries and check attempts stay
// linked, in tenant `default`.
const TENANT_MIGRATIONS = ['0005_tenants.sql', '0008_audit_tenant.sql'];
const server = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const name = `herald_test_mig_${randomBytes(4).toString('hex')}`;
const url = `${server}/${name}`;
let before: string;
let pool: Pool;

beforeAll(async () => {
  before = await mkdtemp(join(tmpdir(), 'herald-mig-'));
  for (const file of (await readdir(defaultMigrationsDir())).filter((f) => f.endsWith('.sql') && !TENANT_MIGRATIONS.includes(f))) await copyFile(join(defaultMigrationsDir(), file), join(before, file));
  await migrate({ url }, before);
  pool = createDatabasePool({ url });
});
afterAll(async () => {
  await pool?.end();
  await rm(before, { recursive: true, force: true });
  const c = await createConnection(server);
  await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await c.end();
});

describe('migration 0005 from the schema without tenants', () => {
  it('keeps every message, delivery and check attempt, linked by seq, in tenant default; and then lets a tenant reuse an id', async () => {
    const now = new Date('2026-06-01T00:00:00.000Z');
    const row = (id: string, status: string) => [id, 'orders.paid', null, '{"n":1}', '{}', status, 'http://x/c', 1000, 1000, 3, 'rollback', 0, 1, null, 'a'.repeat(64), now, now, now, null];
    await pool.query(
      'INSERT INTO messages (id, topic, message_key, payload, headers, status, check_url, check_after_ms, check_interval_ms, max_checks, on_checks_exhausted, delay_ms, checks, next_check_at, content_hash, created_at, updated_at, confirmed_at, cancelled_at) VALUES ?',
      [[row('old-1', 'delivered'), row('old-2', 'failed')]],
    );
    await pool.query('INSERT INTO subscriptions (id, name, topic_pattern, target_type, target, max_attempts, backoff_initial_ms, backoff_max_ms, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 5, 100, 1000, 1, ?, ?)', [
      'sub_1', 's', 'orders.*', 'webhook', '{"type":"webhook","url":"http://x/h"}', now, now,
    ]);
    await pool.query('INSERT INTO deliveries (message_id, subscription_id, target_type, status, attempts, generation, created_at, updated_at) VALUES ?', [
      [['old-1', 'sub_1', 'webhook', 'delivered', 1, 0, now, now], ['old-2', 'sub_1', 'webhook', 'dead', 5, 0, now, now]],
    ]);
    await pool.query("INSERT INTO check_attempts (message_id, check_no, started_at, duration_ms, answer) VALUES ('old-1', 1, ?, 12, 'commit')", [now]);

    expect((await migrate({ url })).applied).toEqual(TENANT_MIGRATIONS);

    const db = createDb(pool);
    const messages = new MessageRepository(db, { maxBatchesInFlight: 0 });
    const old1 = await messages.find({ tenant: 'default', id: 'old-1' });
    const old2 = await messages.find({ tenant: 'default', id: 'old-2' });
    expect(old1).toMatchObject({ tenant: 'default', status: 'delivered' });
    expect(old2).toMatchObject({ tenant: 'default', status: 'failed' });
    const deliveries = new DeliveryRepository(db);
    expect(await deliveries.forMessage(old1!.seq)).toMatchObject([{ subscriptionId: 'sub_1', status: 'delivered' }]);
    expect(await deliveries.forMessage(old2!.seq)).toMatchObject([{ subscriptionId: 'sub_1', status: 'dead' }]);
    expect(await new CheckRepository(db).attempts(old1!.seq)).toMatchObject([{ check: 1, answer: 'commit' }]);

    // Ids are unique per tenant now: another tenant may store old-1; the old message is untouched.
    expect((await messages.prepare({ id: 'old-1', topic: 'orders.paid', payload: { n: 2 }, confirm: true }, { tenant: 'team-a' })).kind).toBe('created');
    expect((await messages.prepare({ id: 'old-1', topic: 'orders.paid', payload: { n: 3 }, confirm: true })).kind).toBe('conflict');
    expect(await messages.tenantsOf('old-1')).toEqual(['default', 'team-a']);
    expect(await deliveries.forMessage(old1!.seq)).toHaveLength(1);
    // A replay of the old message's dead delivery reaches that delivery only.
    expect(await deliveries.replayMessage(old2!.seq, false)).toHaveLength(1);
  });
});
