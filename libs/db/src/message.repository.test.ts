import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTableConfig } from 'drizzle-orm/mysql-core';
import { createConnection, type Pool, type RowDataPacket } from 'mysql2/promise';
import { checkAttempts, createDatabasePool, createDb, deliveries, deliveryAttempts, migrate, MessageRepository, messages, subscriptions } from './index';

const server = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const name = `herald_test_db_${randomBytes(4).toString('hex')}`;
const url = `${server}/${name}`;
const MIGRATIONS = ['0001_messages.sql', '0002_deliveries.sql', '0003_check_attempts.sql', '0004_message_trace_parent.sql'];
let pool: Pool;
let repo: MessageRepository;
const transitions: string[] = [];

beforeAll(async () => {
  await migrate({ url });
  pool = createDatabasePool({ url });
  repo = new MessageRepository(createDb(pool), { onTransition: (from, to) => transitions.push(`${from}->${to}`) });
});

afterAll(async () => {
  await pool?.end();
  const c = await createConnection(server);
  await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await c.end();
});

describe('migrate', () => {
  it('is safe when several replicas start together: each migration applied exactly once', async () => {
    const other = `${name}_race`;
    try {
      const results = await Promise.all(Array.from({ length: 5 }, () => migrate({ url: `${server}/${other}` })));
      const applied = results.flatMap((r) => r.applied).sort();
      expect(applied).toEqual(MIGRATIONS);
      expect(results.filter((r) => r.alreadyApplied.length === MIGRATIONS.length)).toHaveLength(4);
    } finally {
      const c = await createConnection(server);
      await c.query(`DROP DATABASE IF EXISTS \`${other}\``);
      await c.end();
    }
  });

  it('is a no-op the second time', async () => {
    expect(await migrate({ url })).toEqual({ applied: [], alreadyApplied: MIGRATIONS });
  });

  it.each([messages, subscriptions, deliveries, deliveryAttempts, checkAttempts].map((t) => [getTableConfig(t).name, t] as const))(
    'matches the drizzle schema of %s column for column and index for index (guards against drift)',
    async (table, schema) => {
      const [cols] = await pool.query<RowDataPacket[]>(
        'SELECT column_name AS c, is_nullable AS n FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position',
        [name, table],
      );
      expect(cols.map((r) => `${r.c}${r.n === 'YES' ? '?' : ''}`)).toEqual(getTableConfig(schema).columns.map((c) => `${c.name}${c.notNull ? '' : '?'}`));
      const [idx] = await pool.query<RowDataPacket[]>(
        "SELECT DISTINCT index_name AS i FROM information_schema.statistics WHERE table_schema = ? AND table_name = ? AND index_name <> 'PRIMARY' ORDER BY index_name",
        [name, table],
      );
      expect(idx.map((r) => r.i)).toEqual(getTableConfig(schema).indexes.map((i) => i.config.name).sort());
    },
  );

  it('uses the status/next-check index for the due-check query', async () => {
    const [plan] = await pool.query<RowDataPacket[]>(
      "EXPLAIN SELECT id FROM messages WHERE status = 'prepared' AND next_check_at <= UTC_TIMESTAMP(3) ORDER BY next_check_at LIMIT 100",
    );
    expect(String(plan[0]?.possible_keys)).toContain('ix_messages_status_next_check');
  });
});

describe('MessageRepository', () => {
  it('stores timestamps in UTC with milliseconds', async () => {
    const now = new Date('2026-03-04T05:06:07.089Z');
    const fixed = new MessageRepository(createDb(pool), { now: () => now });
    await fixed.prepare({ id: 'utc-1', topic: 't', payload: 1, checkUrl: 'http://x/c', checkAfterMs: 1000 });
    const stored = await repo.findById('utc-1');
    expect(stored?.createdAt.toISOString()).toBe('2026-03-04T05:06:07.089Z');
    expect(stored?.nextCheckAt?.toISOString()).toBe('2026-03-04T05:06:08.089Z');
    const [raw] = await pool.query<RowDataPacket[]>("SELECT CAST(created_at AS CHAR) AS c FROM messages WHERE id = 'utc-1'");
    expect(raw[0]?.c).toBe('2026-03-04 05:06:07.089');
  });

  it('counts by status, and stops counting at the cap when one is given', async () => {
    const before = await repo.countByStatus('prepared');
    for (const n of [1, 2, 3]) await repo.prepare({ id: `count-${n}`, topic: 't', payload: n, checkUrl: 'http://x/c', checkAfterMs: 60_000 });
    expect(await repo.countByStatus('prepared')).toBe(before + 3);
    expect(await repo.countByStatus('prepared', before + 2)).toBe(before + 2);
    expect(await repo.countByStatus('prepared', before + 10)).toBe(before + 3);
  });

  it('treats ids as case-sensitive', async () => {
    expect((await repo.prepare({ id: 'CaseId', topic: 't', payload: 1, confirm: true })).kind).toBe('created');
    expect((await repo.prepare({ id: 'caseid', topic: 't', payload: 2, confirm: true })).kind).toBe('created');
  });

  it('keeps unicode payloads byte for byte', async () => {
    const payload = { text: 'zß水🚀\u2028', nested: [{ a: null }] };
    await repo.prepare({ id: 'uni', topic: 't', payload, confirm: true });
    expect((await repo.findById('uni'))?.payload).toEqual(payload);
  });

  it('lets exactly one of many racing confirms and cancels win', async () => {
    for (let round = 0; round < 5; round++) {
      const id = `race-${round}`;
      await repo.prepare({ id, topic: 'race', payload: {}, checkUrl: 'http://x/c' });
      const before = transitions.length;
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => repo.decide(id, i % 2 === 0 ? 'confirm' : 'cancel')),
      );
      const applied = results.filter((r) => r.kind === 'applied');
      expect(applied).toHaveLength(1);
      const winner = (await repo.findById(id))?.status;
      expect(['confirmed', 'cancelled']).toContain(winner);
      for (const [i, r] of results.entries()) {
        const asked = i % 2 === 0 ? 'confirmed' : 'cancelled';
        if (r.kind === 'applied') expect(asked).toBe(winner);
        else expect(r.kind).toBe(asked === winner ? 'already' : 'conflict');
      }
      expect(transitions.slice(before)).toEqual([`prepared->${winner}`]);
    }
  });

  it('group commit: concurrent prepares share a batch, and a conflicting or repeated id fails only itself', async () => {
    await repo.prepare({ id: 'gc-taken', topic: 'gc', payload: { v: 1 }, checkUrl: 'http://x/c' });
    const results = await Promise.all([
      ...Array.from({ length: 30 }, (_, i) => repo.prepare({ id: `gc-${i}`, topic: 'gc', payload: { i }, checkUrl: 'http://x/c' })),
      repo.prepare({ id: 'gc-taken', topic: 'gc', payload: { v: 2 }, checkUrl: 'http://x/c' }),
      repo.prepare({ id: 'gc-taken', topic: 'gc', payload: { v: 1 }, checkUrl: 'http://x/c' }),
      repo.prepare({ id: 'gc-twice', topic: 'gc', payload: {}, checkUrl: 'http://x/c' }),
      repo.prepare({ id: 'gc-twice', topic: 'gc', payload: {}, checkUrl: 'http://x/c' }),
    ]);
    expect(results.slice(0, 30).every((r) => r.kind === 'created')).toBe(true);
    expect(results[30]?.kind).toBe('conflict');
    expect(results[31]?.kind).toBe('duplicate');
    expect(results.slice(32).map((r) => r.kind).sort()).toEqual(['created', 'duplicate']);
    for (let i = 0; i < 30; i++) expect((await repo.findById(`gc-${i}`))?.payload).toEqual({ i });
  });

  it('group commit: concurrent confirms of many messages each get their own answer and their deliveries', async () => {
    const subscriptionId = `sub_gc_${randomBytes(4).toString('hex')}`;
    const now = new Date();
    await createDb(pool).insert(subscriptions).values({
      id: subscriptionId, name: 'gc', topicPattern: 'gcc.*', targetType: 'webhook', target: JSON.stringify({ type: 'webhook', url: 'http://x/h' }),
      maxAttempts: 3, backoffInitialMs: 100, backoffMaxMs: 1000, enabled: true, disabledReason: null, secret: 'whsec_x', previousSecret: null, previousSecretExpiresAt: null, createdAt: now, updatedAt: now,
    });
    try {
      for (let i = 0; i < 20; i++) await repo.prepare({ id: `gcc-${i}`, topic: 'gcc.paid', payload: i, checkUrl: 'http://x/c' });
      await repo.decide('gcc-3', 'cancel');
      const results = await Promise.all([
        ...Array.from({ length: 20 }, (_, i) => repo.decide(`gcc-${i}`, 'confirm')),
        repo.decide('gcc-7', 'confirm'),
        repo.decide('gcc-missing', 'confirm'),
      ]);
      for (const [i, r] of results.slice(0, 20).entries()) {
        if (i === 3) {
          expect(r.kind).toBe('conflict');
          continue;
        }
        expect(r.kind === 'applied' || (i === 7 && r.kind === 'already')).toBe(true);
        if (r.kind === 'applied') {
          expect(r.message).toMatchObject({ id: `gcc-${i}`, status: 'confirmed', nextCheckAt: null });
          expect(r.deliveries).toEqual([expect.objectContaining({ subscriptionId, status: 'pending', attempts: 0 })]);
          expect(r.jobs).toEqual([expect.objectContaining({ deliveryId: r.deliveries[0]?.id, generation: 0, attempt: 0 })]);
        }
      }
      expect([results[7]?.kind, results[20]?.kind].sort()).toEqual(['already', 'applied']);
      expect(results[21]).toEqual({ kind: 'not_found' });
      const [rows] = await pool.query<RowDataPacket[]>(`SELECT message_id, COUNT(*) AS n FROM deliveries WHERE message_id LIKE 'gcc-%' GROUP BY message_id`);
      expect(rows).toHaveLength(19);
      expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
      expect((await repo.findById('gcc-3'))?.status).toBe('cancelled');
    } finally {
      await pool.query('DELETE FROM subscriptions WHERE id = ?', [subscriptionId]);
    }
  });

  it('pages through a listing without gaps or repeats', async () => {
    for (let i = 0; i < 25; i++) await repo.prepare({ id: `page-${i}`, topic: 'paging.topic', payload: i, confirm: true });
    const seen: string[] = [];
    let before: bigint | undefined;
    for (;;) {
      const page = await repo.list({ topic: 'paging.topic', limit: 7, beforeSeq: before });
      seen.push(...page.items.map((m) => m.id));
      if (page.nextBeforeSeq === null) break;
      before = page.nextBeforeSeq;
    }
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `page-${24 - i}`));
  });
});
