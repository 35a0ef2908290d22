import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTableConfig } from 'drizzle-orm/mysql-core';
import { createConnection, type Pool, type RowDataPacket } from 'mysql2/promise';
import type { Target } from '@herald/domain';
import { auditLog, checkAttempts, createDatabasePool, createDb, deliveries, deliveryAttempts, deliveryOrderLocks, hasErrorCode, LeaseSlots, migrate, MessageRepository, messages, subscriptions, WriteQueueFullError, type DecisionResult, type LeasedDelivery, type PrepareOutcome, type WriteBatchReport } from './index';
import { insertWeight, insertWeightLimit } from './insert-rounds';
import { MAX_MESSAGES_FOR_TOPIC_FILTER, SELECT_SUBSCRIPTIONS_FOR_TOPICS, selectSubscriptionsForMessages } from './subscription.statements';
import { purgeRuns } from './schema/purge';

/** A message of the default tenant, where every message stored without a tenant lives. */
const def = (id: string) => ({ tenant: 'default', id });

const server = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const name = `herald_test_db_${randomBytes(4).toString('hex')}`;
const url = `${server}/${name}`;
const MIGRATIONS = ['0001_messages.sql', '0002_deliveries.sql', '0003_check_attempts.sql', '0004_message_trace_parent.sql', '0005_tenants.sql', '0006_retention.sql', '0007_audit_log.sql', '0008_audit_tenant.sql', '0009_key_ordering.sql'];
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

  it.each([messages, subscriptions, deliveries, deliveryAttempts, deliveryOrderLocks, checkAttempts, auditLog, purgeRuns].map((t) => [getTableConfig(t).name, t] as const))(
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
    const stored = await repo.find(def('utc-1'));
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
    expect((await repo.find(def('uni')))?.payload).toEqual(payload);
  });

  it('lets exactly one of many racing confirms and cancels win', async () => {
    for (let round = 0; round < 5; round++) {
      const id = `race-${round}`;
      await repo.prepare({ id, topic: 'race', payload: {}, checkUrl: 'http://x/c' });
      const before = transitions.length;
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => repo.decide(def(id), i % 2 === 0 ? 'confirm' : 'cancel')),
      );
      const applied = results.filter((r) => r.kind === 'applied');
      expect(applied).toHaveLength(1);
      const winner = (await repo.find(def(id)))?.status;
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
    for (let i = 0; i < 30; i++) expect((await repo.find(def(`gc-${i}`)))?.payload).toEqual({ i });
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
      await repo.decide(def('gcc-3'), 'cancel');
      const results = await Promise.all([
        ...Array.from({ length: 20 }, (_, i) => repo.decide(def(`gcc-${i}`), 'confirm')),
        repo.decide(def('gcc-7'), 'confirm'),
        repo.decide(def('gcc-missing'), 'confirm'),
      ]);
      for (const [i, r] of results.slice(0, 20).entries()) {
        if (i === 3) {
          expect(r.kind).toBe('conflict');
          continue;
        }
        expect(r.kind === 'applied' || (i === 7 && r.kind === 'already')).toBe(true);
        if (r.kind === 'applied') {
          expect(r.message).toMatchObject({ id: `gcc-${i}`, status: 'confirmed', nextCheckAt: null });
          expect(r.fanOut.deliveries).toEqual([expect.objectContaining({ subscriptionId, status: 'pending', attempts: 0 })]);
          expect(r.fanOut.jobs).toEqual([expect.objectContaining({ deliveryId: r.fanOut.deliveries[0]?.id, generation: 0, attempt: 0 })]);
        }
      }
      expect([results[7]?.kind, results[20]?.kind].sort()).toEqual(['already', 'applied']);
      expect(results[21]).toEqual({ kind: 'not_found' });
      const [rows] = await pool.query<RowDataPacket[]>(`SELECT message_id, COUNT(*) AS n FROM deliveries WHERE message_id LIKE 'gcc-%' GROUP BY message_id`);
      expect(rows).toHaveLength(19);
      expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
      expect((await repo.find(def('gcc-3')))?.status).toBe('cancelled');
    } finally {
      await pool.query('DELETE FROM subscriptions WHERE id = ?', [subscriptionId]);
    }
  });

  it('reads only the subscriptions whose pattern may match a batch\'s topics, and every matching one still gets its delivery', async () => {
    const now = new Date();
    const patterns = ['#', '*.paid', '*', 'fwo.#', 'fwo.paid', 'fwz.*', 'fwother.paid'];
    const ids = new Map(patterns.map((p) => [p, `sub_fw_${randomBytes(4).toString('hex')}`]));
    await createDb(pool).insert(subscriptions).values(patterns.map((p) => ({
      id: ids.get(p) as string, name: p, topicPattern: p, targetType: 'webhook', target: JSON.stringify({ type: 'webhook', url: 'http://x/h' }),
      maxAttempts: 3, backoffInitialMs: 100, backoffMaxMs: 1000, enabled: true, disabledReason: null, secret: 'whsec_x', previousSecret: null, previousSecretExpiresAt: null, createdAt: now, updatedAt: now,
    })));
    const expected = { 'fwo.paid': ['#', '*.paid', 'fwo.#', 'fwo.paid'], 'fwz.paid': ['#', '*.paid', 'fwz.*'] } as const;
    const subscribed = (topic: keyof typeof expected) => expected[topic].map((p) => ids.get(p)).sort();
    try {
      // The read itself leaves out what cannot match: fwother.paid (another first word), and
      // nothing else of these; * is kept (a wildcard first word) though it matches no two-word topic.
      const mine = new Set(ids.values());
      const [read] = await pool.query<RowDataPacket[]>(SELECT_SUBSCRIPTIONS_FOR_TOPICS, [['fwo', 'fwz']]);
      expect(read.map((r) => r.s_id as string).filter((id) => mine.has(id)).sort()).toEqual(patterns.filter((p) => p !== 'fwother.paid').map((p) => ids.get(p)).sort());

      // Confirm batches (concurrent confirms of both topics: one of 1, then one of 23, above
      // MAX_MESSAGES_FOR_TOPIC_FILTER, which reads every subscription) and direct-publish batches.
      const topicOf = (i: number) => (i % 2 === 0 ? 'fwo.paid' : 'fwz.paid');
      const N = 24;
      for (let i = 0; i < N; i++) await repo.prepare({ id: `fw-${i}`, topic: topicOf(i), payload: i, checkUrl: 'http://x/c' });
      const [refs] = await pool.query<RowDataPacket[]>(selectSubscriptionsForMessages(3), ['fw-0', 'default', 'fw-1', 'default', 'fw-absent', 'default']);
      expect(refs.map((r) => r.s_id as string).filter((id) => mine.has(id)).sort()).toEqual(read.map((r) => r.s_id as string).filter((id) => mine.has(id)).sort());
      const reports: WriteBatchReport[] = [];
      const observed = new MessageRepository(createDb(pool), { maxBatchesInFlight: 1, onBatch: (b) => reports.push(b) });
      const confirmed = await Promise.all(Array.from({ length: N }, (_, i) => observed.decide(def(`fw-${i}`), 'confirm')));
      expect(reports.filter((r) => r.kind === 'confirm').map((r) => r.size)).toEqual([1, N - 1]);
      expect(N - 1).toBeGreaterThan(MAX_MESSAGES_FOR_TOPIC_FILTER);
      // And one of 7, mixed first words, through the read that names each message.
      for (let i = 0; i < 8; i++) await repo.prepare({ id: `fwm-${i}`, topic: topicOf(i), payload: i, checkUrl: 'http://x/c' });
      const mixed = await Promise.all(Array.from({ length: 8 }, (_, i) => observed.decide(def(`fwm-${i}`), 'confirm')));
      expect(reports.filter((r) => r.kind === 'confirm').map((r) => r.size)).toEqual([1, N - 1, 1, 7]);
      for (const [i, r] of mixed.entries()) {
        expect(r.kind).toBe('applied');
        if (r.kind === 'applied') expect(r.fanOut.deliveries.map((d) => d.subscriptionId).sort(), `fwm-${i}`).toEqual(subscribed(topicOf(i)));
      }
      const published = await Promise.all(Array.from({ length: 6 }, (_, i) => observed.prepare({ id: `fwd-${i}`, topic: topicOf(i), payload: i, confirm: true })));
      for (const [i, r] of confirmed.entries()) {
        expect(r.kind).toBe('applied');
        if (r.kind === 'applied') expect(r.fanOut.deliveries.map((d) => d.subscriptionId).sort(), `fw-${i}`).toEqual(subscribed(topicOf(i)));
      }
      for (const [i, r] of published.entries()) {
        expect(r.kind).toBe('created');
        if (r.kind === 'created') expect(r.fanOut.deliveries.map((d) => d.subscriptionId).sort(), `fwd-${i}`).toEqual(subscribed(topicOf(i)));
      }
      const [stored] = await pool.query<RowDataPacket[]>("SELECT message_id AS m, subscription_id AS s FROM deliveries WHERE message_id LIKE 'fw%'");
      expect(stored).toHaveLength((N / 2) * (4 + 3) + 4 * (4 + 3) + 3 * (4 + 3));
    } finally {
      await pool.query('DELETE FROM subscriptions WHERE id IN (?)', [[...ids.values()]]);
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

describe('MessageRepository group commit, observed batch by batch', () => {
  /**
   * A repository with one batch in flight: of writes submitted in one tick, the first goes out
   * alone and all the others wait and leave together as the next batch.
   */
  const observed = () => {
    const reports: WriteBatchReport[] = [];
    const moves: string[] = [];
    const r = new MessageRepository(createDb(pool), { maxBatchesInFlight: 1, onBatch: (b) => reports.push(b), onTransition: (from, to) => moves.push(`${from}->${to}`) });
    return { repo: r, reports, moves };
  };
  const prepared = (id: string, payload: unknown = {}, topic = 'obs') => ({ id, topic, payload, checkUrl: 'http://x/c' });

  it('writes a clean batch of prepares as one INSERT, and counts each stored message', async () => {
    const { repo: r, reports, moves } = observed();
    const results = await Promise.all([r.prepare(prepared('clean-lead')), ...Array.from({ length: 20 }, (_, i) => r.prepare(prepared(`clean-${i}`, { i })))]);
    expect(results.every((x) => x.kind === 'created')).toBe(true);
    expect(reports).toEqual([
      { kind: 'prepare', size: 1, statements: 1, fallbacks: [] },
      { kind: 'prepare', size: 20, statements: 1, fallbacks: [] },
    ]);
    expect(moves).toEqual(Array.from({ length: 21 }, () => 'new->prepared'));
    for (let i = 0; i < 20; i++) expect((await r.find(def(`clean-${i}`)))?.payload).toEqual({ i });
  });

  it('answers ids already stored or repeated in the batch from one read, and inserts the rest in one more INSERT', async () => {
    await repo.prepare(prepared('dupb-old', { v: 1 }));
    const { repo: r, reports, moves } = observed();
    const results = await Promise.all([
      r.prepare(prepared('dupb-lead')),
      ...Array.from({ length: 10 }, (_, i) => r.prepare(prepared(`dupb-${i}`, { i }))),
      r.prepare(prepared('dupb-old', { v: 1 })), // 11: a retry of a stored message
      r.prepare(prepared('dupb-old', { v: 2 })), // 12: the same id, other content
      r.prepare(prepared('dupb-twice', { t: 1 })), // 13: first copy in the batch
      r.prepare(prepared('dupb-twice', { t: 1 })), // 14: its retry in the same batch
      r.prepare(prepared('dupb-twice', { t: 2 })), // 15: the same id, other content
    ]);
    const kinds = results.slice(1).map((x) => x.kind);
    expect(kinds).toEqual([...Array.from({ length: 10 }, () => 'created'), 'duplicate', 'conflict', 'created', 'duplicate', 'conflict']);
    expect(results[12]?.kind === 'conflict' && results[12].message.payload).toEqual({ v: 1 });
    expect(results[15]?.kind === 'conflict' && results[15].message.payload).toEqual({ t: 1 });
    // The failed first INSERT and one INSERT of everything that was not stored yet.
    expect(reports[1]).toEqual({ kind: 'prepare', size: 15, statements: 2, fallbacks: ['duplicate'] });
    expect(moves).toEqual(Array.from({ length: 12 }, () => 'new->prepared'));
    for (let i = 0; i < 10; i++) expect((await r.find(def(`dupb-${i}`)))?.payload).toEqual({ i });
    expect((await r.find(def('dupb-twice')))?.payload).toEqual({ t: 1 });
  });

  it('fails only the row that MySQL refuses (a value too long for its column), and stores its neighbours', async () => {
    const { repo: r, reports, moves } = observed();
    const results = await Promise.allSettled([
      r.prepare(prepared('long-lead')),
      ...Array.from({ length: 5 }, (_, i) => r.prepare(prepared(`long-${i}`, { i }))),
      r.prepare(prepared('long-bad', {}, 't'.repeat(201))), // topic is VARCHAR(200); strict mode refuses it
      r.prepare(prepared('long-after')),
    ]);
    expect(results.map((x) => x.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    const refused = results[6] as PromiseRejectedResult;
    expect(hasErrorCode(refused.reason, ['ER_DATA_TOO_LONG'])).toBe(true);
    expect(reports[1]).toMatchObject({ kind: 'prepare', size: 7, statements: 1, fallbacks: ['error'] });
    expect(moves).toHaveLength(7);
    for (const id of ['long-0', 'long-4', 'long-after']) expect((await r.find(def(id)))?.status).toBe('prepared');
    expect(await r.find(def('long-bad'))).toBeUndefined();
  });

  it('answers a duplicate from one read and then writes the rest row by row when another row fails', async () => {
    await repo.prepare(prepared('mixed-old', { v: 1 }));
    const { repo: r, reports, moves } = observed();
    const results = await Promise.allSettled([
      r.prepare(prepared('mixed-lead')),
      r.prepare(prepared('mixed-0')),
      r.prepare(prepared('mixed-old', { v: 1 })),
      r.prepare(prepared('mixed-bad', {}, 't'.repeat(201))),
      r.prepare(prepared('mixed-1')),
    ]);
    expect(results.map((x) => (x.status === 'fulfilled' ? x.value.kind : 'rejected'))).toEqual(['created', 'created', 'duplicate', 'rejected', 'created']);
    expect(reports[1]).toMatchObject({ kind: 'prepare', size: 4, statements: 2, fallbacks: ['duplicate', 'error'] });
    expect(moves).toHaveLength(3);
    expect((await r.find(def('mixed-1')))?.status).toBe('prepared');
  });

  it('confirms a batch in one transaction and counts each transition', async () => {
    for (let i = 0; i < 10; i++) await repo.prepare(prepared(`cb-${i}`));
    await repo.prepare(prepared('cb-lead'));
    const { repo: r, reports, moves } = observed();
    const results = await Promise.all([r.decide(def('cb-lead'), 'confirm'), ...Array.from({ length: 10 }, (_, i) => r.decide(def(`cb-${i}`), 'confirm'))]);
    expect(results.every((x) => x.kind === 'applied')).toBe(true);
    expect(reports).toEqual([
      { kind: 'confirm', size: 1, statements: 1, fallbacks: [] },
      { kind: 'confirm', size: 10, statements: 1, fallbacks: [] },
    ]);
    expect(moves).toEqual(Array.from({ length: 11 }, () => 'prepared->confirmed'));
  });

  it('does not wait for a message another transaction holds: the batch skips it, and it is confirmed alone once free', async () => {
    for (let i = 0; i < 5; i++) await repo.prepare(prepared(`lk-${i}`));
    await repo.prepare(prepared('lk-lead'));
    const holder = await pool.getConnection();
    try {
      await holder.query('BEGIN');
      await holder.query("SELECT id FROM messages WHERE id = 'lk-2' FOR UPDATE");
      const { repo: r, reports, moves } = observed();
      const lead = r.decide(def('lk-lead'), 'confirm');
      const held = r.decide(def('lk-2'), 'confirm');
      const others = [0, 1, 3, 4].map((i) => r.decide(def(`lk-${i}`), 'confirm'));
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 5_000));
      const free = await Promise.race([Promise.all([lead, ...others]), timeout]);
      expect(free).not.toBe('timeout');
      expect((free as Array<{ kind: string }>).map((x) => x.kind)).toEqual(['applied', 'applied', 'applied', 'applied', 'applied']);
      expect(reports[1]).toEqual({ kind: 'confirm', size: 5, statements: 1, fallbacks: ['skipped-locked'] });
      await holder.query('COMMIT');
      expect((await held).kind).toBe('applied');
      expect(moves).toHaveLength(6);
    } finally {
      holder.release();
    }
  });

  it('runs a prepare again when MySQL picks its INSERT as a deadlock victim, instead of failing it', async () => {
    const holder = await pool.getConnection();
    try {
      await holder.query('BEGIN');
      // Weigh the holder down, so InnoDB picks Herald's INSERT (the lighter transaction) as the victim.
      const rows = Array.from({ length: 50 }, (_, i) => [0, `dl-weight-${i}`, 1, new Date(), 0, 'unknown']);
      await holder.query('INSERT INTO check_attempts (message_seq, message_id, check_no, started_at, duration_ms, answer) VALUES ?', [rows]);
      // Locks the gap of the topic index where the new message's entry goes.
      await holder.query("SELECT seq FROM messages WHERE topic = 'dl.topic' FOR UPDATE");
      const { repo: r } = observed();
      const stored = r.prepare(prepared('dl-victim', {}, 'dl.topic'));
      let settled = false;
      stored.then(() => (settled = true), () => (settled = true));
      // The INSERT holds its new row (and id) and waits on that gap.
      await waitFor(async () => {
        const [waiting] = await pool.query<RowDataPacket[]>("SELECT 1 FROM information_schema.processlist WHERE db = ? AND info LIKE 'insert into%messages%'", [name]);
        return waiting.length > 0 ? true : undefined;
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(settled).toBe(false);
      // Now the holder wants that id: a cycle, and InnoDB rolls the INSERT back.
      await holder.query("SELECT id FROM messages WHERE id = 'dl-victim' FOR UPDATE");
      await holder.query('COMMIT');
      expect((await stored).kind).toBe('created');
      expect((await r.find(def('dl-victim')))?.topic).toBe('dl.topic');
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
  });

  it('weighs a row by its UTF-8 bytes, doubled for escaping', () => {
    const row = { id: 'w', topic: 'tt', key: null, payload: JSON.stringify('水'.repeat(100)), headers: '{}', checkUrl: null, traceParent: null };
    // 1 + 2 + 302 (100 × 3 bytes and two quotes) + 2 bytes of text.
    expect(insertWeight(row as Parameters<typeof insertWeight>[0])).toBe(2 * (1 + 2 + 302 + 2) + 512);
  });

  it('sizes prepare batches from max_allowed_packet, within a floor and a cap', () => {
    expect(insertWeightLimit(16 * 2 ** 20)).toBe(12 * 2 ** 20);
    expect(insertWeightLimit(1024)).toBe(64 * 2 ** 10);
    expect(insertWeightLimit(2 ** 30)).toBe(16 * 2 ** 20);
  });
});

describe('MessageRepository group commit of direct publishes', () => {
  const observed = (options: { maxBatchesInFlight?: number; maxQueuedWrites?: number; slots?: LeaseSlots } = {}) => {
    const reports: WriteBatchReport[] = [];
    const moves: string[] = [];
    const r = new MessageRepository(createDb(pool), { maxBatchesInFlight: 1, ...options, onBatch: (b) => reports.push(b), onTransition: (from, to) => moves.push(`${from}->${to}`) });
    return { repo: r, reports, moves };
  };
  const direct = (id: string, payload: unknown = {}, topic = 'dir.paid') => ({ id, topic, payload, confirm: true as const });
  const subscriptionIds: string[] = [];

  beforeAll(async () => {
    // Two subscriptions match every test's topic; one matches none of them.
    const now = new Date();
    for (const pattern of ['dir.*', 'dir.#', 'elsewhere']) {
      const id = `sub_dir_${randomBytes(4).toString('hex')}`;
      subscriptionIds.push(id);
      await createDb(pool).insert(subscriptions).values({
        id, name: id, topicPattern: pattern, targetType: 'webhook', target: JSON.stringify({ type: 'webhook', url: 'http://x/h' }),
        maxAttempts: 3, backoffInitialMs: 100, backoffMaxMs: 1000, enabled: true, disabledReason: null, secret: 'whsec_x', previousSecret: null, previousSecretExpiresAt: null, createdAt: now, updatedAt: now,
      });
    }
  });
  afterAll(async () => {
    await pool.query('DELETE FROM subscriptions WHERE id IN (?)', [subscriptionIds]);
  });

  /** Delivery count per message id with `prefix`; a committed direct publish has exactly two. */
  const deliveryCounts = async (prefix: string) => {
    const [rows] = await pool.query<RowDataPacket[]>(
      'SELECT m.id, m.status, COUNT(d.id) AS n FROM messages m LEFT JOIN deliveries d ON d.message_id = m.id WHERE m.id LIKE ? GROUP BY m.id, m.status',
      [`${prefix}%`],
    );
    return new Map(rows.map((r) => [r.id as string, { status: r.status as string, deliveries: Number(r.n) }]));
  };

  it('commits concurrent direct publishes in one transaction per batch, each with its own deliveries', async () => {
    const { repo: r, reports, moves } = observed();
    const results = await Promise.all([r.prepare(direct('dirc-lead')), ...Array.from({ length: 20 }, (_, i) => r.prepare(direct(`dirc-${i}`, { i })))]);
    expect(reports).toEqual([
      { kind: 'direct', size: 1, statements: 1, fallbacks: [] },
      { kind: 'direct', size: 20, statements: 1, fallbacks: [] },
    ]);
    expect(moves).toEqual(Array.from({ length: 21 }, () => 'new->confirmed'));
    const seen = new Set<number>();
    for (const [i, x] of results.entries()) {
      expect(x.kind).toBe('created');
      if (x.kind !== 'created') continue;
      expect(x.message).toMatchObject({ id: i === 0 ? 'dirc-lead' : `dirc-${i - 1}`, status: 'confirmed', nextCheckAt: null });
      // Its own two deliveries, not a neighbour's: one per matching subscription.
      expect(x.fanOut.deliveries.map((d) => d.subscriptionId).sort()).toEqual(subscriptionIds.slice(0, 2).sort());
      expect(x.fanOut.jobs.map((j) => j.deliveryId)).toEqual(x.fanOut.deliveries.map((d) => d.id));
      for (const d of x.fanOut.deliveries) seen.add(d.id);
    }
    expect(seen.size).toBe(42);
    const [owners] = await pool.query<RowDataPacket[]>('SELECT id, message_id FROM deliveries WHERE id IN (?)', [[...seen]]);
    for (const x of results) if (x.kind === 'created') for (const d of x.fanOut.deliveries) expect(owners.find((o) => Number(o.id) === d.id)?.message_id).toBe(x.message.id);
    const stored = await deliveryCounts('dirc-');
    expect(stored.size).toBe(21);
    for (const [, m] of stored) expect(m).toEqual({ status: 'confirmed', deliveries: 2 });
  });

  it('answers ids already stored or repeated in the batch as duplicates or conflicts, and publishes their neighbours', async () => {
    await repo.prepare(direct('dird-old', { v: 1 }));
    await repo.prepare({ id: 'dird-half', topic: 'dir.paid', payload: {}, checkUrl: 'http://x/c' });
    const { repo: r, reports, moves } = observed();
    const results = await Promise.all([
      r.prepare(direct('dird-lead')),
      ...Array.from({ length: 10 }, (_, i) => r.prepare(direct(`dird-${i}`, { i }))),
      r.prepare(direct('dird-old', { v: 1 })), // 11: a retry of a stored message
      r.prepare(direct('dird-old', { v: 2 })), // 12: the same id, other content
      r.prepare(direct('dird-twice', { t: 1 })), // 13: first copy in the batch
      r.prepare(direct('dird-twice', { t: 1 })), // 14: its retry in the same batch
      r.prepare(direct('dird-twice', { t: 2 })), // 15: the same id, other content
      r.prepare(direct('dird-half')), // 16: a prepared message's id, published directly
    ]);
    expect(results.slice(1).map((x) => x.kind)).toEqual([...Array.from({ length: 10 }, () => 'created'), 'duplicate', 'conflict', 'created', 'duplicate', 'conflict', 'conflict']);
    expect(results[12]?.kind === 'conflict' && results[12].message.payload).toEqual({ v: 1 });
    expect(results[14]?.kind === 'duplicate' && results[14].message).toMatchObject({ status: 'confirmed', payload: { t: 1 } });
    expect(results[15]?.kind === 'conflict' && results[15].message.payload).toEqual({ t: 1 });
    expect(results[16]?.kind === 'conflict' && results[16].message.status).toBe('prepared');
    // The failed first INSERT (rolled back with its transaction) and one more of the rest.
    expect(reports[1]).toEqual({ kind: 'direct', size: 16, statements: 2, fallbacks: ['duplicate'] });
    expect(moves).toEqual(Array.from({ length: 12 }, () => 'new->confirmed'));
    const stored = await deliveryCounts('dird-');
    expect(stored.get('dird-twice')).toEqual({ status: 'confirmed', deliveries: 2 });
    expect(stored.get('dird-half')).toEqual({ status: 'prepared', deliveries: 0 });
    for (let i = 0; i < 10; i++) expect(stored.get(`dird-${i}`)).toEqual({ status: 'confirmed', deliveries: 2 });
    expect(stored.get('dird-old')).toEqual({ status: 'confirmed', deliveries: 2 });
  });

  it('fails only the message MySQL refuses (a value too long for its column), and publishes its neighbours', async () => {
    const { repo: r, reports, moves } = observed();
    const results = await Promise.allSettled([
      r.prepare(direct('dirl-lead')),
      ...Array.from({ length: 5 }, (_, i) => r.prepare(direct(`dirl-${i}`, { i }))),
      r.prepare(direct('dirl-bad', {}, 't'.repeat(201))), // topic is VARCHAR(200); strict mode refuses it
      r.prepare(direct('dirl-after')),
    ]);
    expect(results.map((x) => (x.status === 'fulfilled' ? x.value.kind : 'rejected'))).toEqual(['created', 'created', 'created', 'created', 'created', 'created', 'rejected', 'created']);
    expect(hasErrorCode((results[6] as PromiseRejectedResult).reason, ['ER_DATA_TOO_LONG'])).toBe(true);
    expect(reports[1]).toMatchObject({ kind: 'direct', size: 7, statements: 1, fallbacks: ['error'] });
    expect(moves).toHaveLength(7);
    const stored = await deliveryCounts('dirl-');
    expect(stored.size).toBe(7);
    for (const [, m] of stored) expect(m).toEqual({ status: 'confirmed', deliveries: 2 });
    for (const x of results) if (x.status === 'fulfilled' && x.value.kind === 'created') expect(x.value.fanOut.jobs).toHaveLength(2);
  });

  it('falls back to publishing each message alone when the batch loses its connection: every caller answered, none without its deliveries', async () => {
    const holder = await pool.getConnection();
    try {
      // Holds 'dirk-a' uncommitted, so the batch's INSERT waits on it (a duplicate check) until
      // killed. The neighbours' ids sort after it: a request waiting for that id also holds up
      // inserts into the gap before it (InnoDB queues them behind its waiting next-key lock).
      await holder.query('BEGIN');
      await holder.query(
        `INSERT INTO messages (id, topic, payload, headers, status, check_after_ms, check_interval_ms, max_checks, on_checks_exhausted, delay_ms, content_hash, created_at, updated_at)
         VALUES ('dirk-a', 'dir.paid', '{}', '{}', 'confirmed', 0, 0, 0, 'rollback', 0, REPEAT('0', 64), UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))`,
      );
      const { repo: r, reports, moves } = observed();
      const lead = r.prepare(direct('dirk-lead'));
      const others = Array.from({ length: 5 }, (_, i) => r.prepare(direct(`dirk-b${i}`, { i })));
      const held = r.prepare(direct('dirk-a', { held: true }));
      // Awaited last; a failure before then must not also surface as an unhandled rejection.
      held.catch(() => undefined);
      expect((await lead).kind).toBe('created');
      const [waiting] = await waitFor(async () => {
        const [rows] = await pool.query<RowDataPacket[]>(
          "SELECT id FROM information_schema.processlist WHERE db = ? AND info LIKE 'insert into%messages%' AND id <> CONNECTION_ID()",
          [name],
        );
        return rows.length > 0 ? rows : undefined;
      });
      await pool.query(`KILL CONNECTION ${Number(waiting?.id)}`);
      // Its neighbours no longer wait for the held id: each is published on its own.
      const freed = await Promise.all(others);
      expect(freed.map((x) => x.kind)).toEqual(['created', 'created', 'created', 'created', 'created']);
      expect(reports[1]).toMatchObject({ kind: 'direct', size: 6, statements: 1, fallbacks: ['failed'] });
      await holder.query('ROLLBACK');
      const mine = await held;
      expect(mine.kind).toBe('created');
      expect(mine.kind === 'created' && mine.fanOut.deliveries).toHaveLength(2);
      expect(moves).toHaveLength(7);
      const stored = await deliveryCounts('dirk-');
      expect(stored.size).toBe(7);
      for (const [, m] of stored) expect(m).toEqual({ status: 'confirmed', deliveries: 2 });
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
  });

  /** Slots for inline runs that count every slot a transaction took, and can make leasing fail. */
  class CountedSlots extends LeaseSlots {
    taken = 0;
    failLeases = false;
    override take(wanted: number): number {
      const granted = super.take(wanted);
      this.taken += granted;
      return granted;
    }
    override leaseMs(target: Target | undefined): number {
      if (this.failLeases) throw new Error('lease length unavailable');
      return super.leaseMs(target);
    }
  }
  const TIMEOUTS = { webhookTimeoutMs: 25_000, amqpConfirmTimeoutMs: 10_000 };
  const fanOutOf = (x: PrepareOutcome | DecisionResult) => (x.kind === 'created' || x.kind === 'applied' ? x.fanOut : undefined);

  it('leases the deliveries due now to this process as they are created, as many as it has slots for, and returns them once committed', async () => {
    const slots = new CountedSlots(5, TIMEOUTS);
    const { repo: r } = observed({ slots });
    for (let i = 0; i < 2; i++) await repo.prepare({ id: `lsc-${i}`, topic: 'dir.paid', payload: { c: i }, checkUrl: 'http://x/c' });
    // Read from another connection the moment a call returns its leased deliveries: the rows must be committed.
    const visibleAtReturn: Array<Promise<unknown>> = [];
    const returned = <T extends PrepareOutcome | DecisionResult>(call: Promise<T>) =>
      call.then((x) => {
        for (const l of fanOutOf(x)?.leased ?? []) {
          visibleAtReturn.push(pool.query<RowDataPacket[]>('SELECT lease_until FROM deliveries WHERE id = ?', [l.job.deliveryId]).then(([rows]) => rows[0]?.lease_until ?? 'missing'));
        }
        return x;
      });
    const results = await Promise.all([
      returned(r.prepare(direct('lsd-lead', { lead: true }))),
      returned(r.prepare(direct('lsd-0'))),
      returned(r.prepare({ ...direct('lsd-later'), delayMs: 60_000 })),
      returned(r.decide(def('lsc-0'), 'confirm')),
      returned(r.decide(def('lsc-1'), 'confirm')),
    ]);
    const created = results.map((x) => (x.kind === 'created' || x.kind === 'applied' ? x : undefined));
    const runs: LeasedDelivery[] = created.flatMap((c) => c?.fanOut.leased ?? []);
    // 2 subscriptions each, 5 slots in all: the lead (alone in its batch) gets both of its own;
    // the others share the 3 left in the order their batches commit; the delayed one's are not due.
    const leasedIds = runs.map((l) => l.job.deliveryId);
    expect(slots.taken).toBe(5);
    // None given back: each leased delivery keeps its slot until its run ends.
    expect(slots.inUse).toBe(5);
    expect(runs).toHaveLength(5);
    expect(new Set(leasedIds).size).toBe(5);
    expect(runs.filter((l) => l.context.message.id === 'lsd-lead')).toHaveLength(2);
    expect(runs.some((l) => l.context.message.id === 'lsd-later')).toBe(false);
    for (const c of created) {
      expect(c).toBeDefined();
      const all = c!.fanOut.deliveries.map((d) => d.id);
      const jobs = c!.fanOut.jobs.map((j) => j.deliveryId);
      // Every delivery is either scheduled or leased, never both, and the API sees them all pending.
      const leasedHere = c!.fanOut.leased.map((l) => l.job.deliveryId);
      expect(c!.fanOut.leased.every((l) => l.context.message.id === c!.message.id)).toBe(true);
      expect([...jobs, ...leasedHere].sort()).toEqual([...all].sort());
      // The signing secrets travel with the leased runs only, never in the API's view of the call.
      expect(JSON.stringify([c!.message, c!.fanOut.deliveries, c!.fanOut.jobs])).not.toContain('whsec_');
      expect(jobs.filter((id) => leasedIds.includes(id))).toEqual([]);
      expect(c!.fanOut.deliveries.every((d) => d.status === 'pending')).toBe(true);
    }
    expect(created[2]?.fanOut.leased).toEqual([]);
    expect(created[2]?.fanOut.jobs).toHaveLength(2);
    // Each leased delivery was returned after its commit, and carries what its attempt needs.
    // (dateStrings: a committed lease reads as its text; an uncommitted row would read as 'missing'.)
    expect(visibleAtReturn).toHaveLength(5);
    for (const at of await Promise.all(visibleAtReturn)) expect(at).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);
    const lead = runs.find((l) => l.context.message.id === 'lsd-lead');
    expect(lead?.context.message).toMatchObject({ payload: { lead: true }, status: 'confirmed' });
    expect(lead?.context.subscription).toMatchObject({ secret: 'whsec_x', enabled: true });
    expect(runs.find((l) => l.context.message.id === 'lsc-0')?.context.message).toMatchObject({ payload: { c: 0 }, status: 'confirmed' });
    for (const l of runs) {
      expect(l.context.delivery).toMatchObject({ id: l.job.deliveryId, status: 'pending', attempts: 0, generation: 0 });
      expect(l.job).toMatchObject({ generation: 0, attempt: 0 });
    }
    // In MySQL: leased rows carry the lease, the others none.
    const [rows] = await pool.query<RowDataPacket[]>("SELECT id, lease_until FROM deliveries WHERE message_id LIKE 'ls%'");
    expect(rows).toHaveLength(10);
    for (const row of rows) expect(row.lease_until === null).toBe(!leasedIds.includes(Number(row.id)));
    slots.give(slots.inUse);
  });

  it('gives the slots back and returns nothing leased when the transaction fails after taking them; the messages are published on their own', async () => {
    const slots = new CountedSlots(10, TIMEOUTS);
    const { repo: r, reports } = observed({ slots });
    slots.failLeases = true;
    const results = await Promise.all([r.prepare(direct('lsf-lead')), r.prepare(direct('lsf-0')), r.prepare(direct('lsf-1'))]);
    slots.failLeases = false;
    expect(results.map((x) => x.kind)).toEqual(['created', 'created', 'created']);
    expect(reports.map((b) => b.fallbacks)).toEqual([['error'], ['error']]);
    expect(slots.taken).toBeGreaterThan(0);
    expect(slots.inUse).toBe(0);
    expect(results.flatMap((x) => fanOutOf(x)?.leased ?? [])).toEqual([]);
    // Published on their own, scheduled as usual, none leased.
    for (const x of results) expect(x.kind === 'created' && x.fanOut.jobs.length).toBe(2);
    const [rows] = await pool.query<RowDataPacket[]>("SELECT COUNT(*) AS n, COUNT(lease_until) AS leased FROM deliveries WHERE message_id LIKE 'lsf-%'");
    expect([Number(rows[0]?.n), Number(rows[0]?.leased)]).toEqual([6, 0]);
  });

  it('commits a batch\'s messages and deliveries together: a batch that loses its connection while inserting the deliveries leaves no message behind', async () => {
    const holder = await pool.getConnection();
    try {
      // Uncommitted deliveries of the seqs the next messages will get make the batch's deliveries
      // INSERT wait (a duplicate check on the unique key) after its messages INSERT went through.
      // The lead takes the next seq; the batch's messages the ones after it.
      const [[next]] = await pool.query<RowDataPacket[]>("SELECT AUTO_INCREMENT AS seq FROM information_schema.tables WHERE table_schema = ? AND table_name = 'messages'", [name]);
      const future = Array.from({ length: 100 }, (_, i) => [BigInt(next?.seq ?? 1) + BigInt(i + 1), 'dirz-future', subscriptionIds[0], 'webhook', 'pending', 0, 0, new Date(), new Date(), new Date()]);
      await holder.query('BEGIN');
      await holder.query('INSERT INTO deliveries (message_seq, message_id, subscription_id, target_type, status, attempts, generation, next_attempt_at, created_at, updated_at) VALUES ?', [future]);
      const { repo: r, reports, moves } = observed();
      const lead = r.prepare(direct('dirz-lead'));
      const batch = ['dirz-b', 'dirz-c', 'dirz-d'].map((id) => r.prepare(direct(id)));
      const held = batch[0] as Promise<unknown>;
      held.catch(() => undefined);
      expect((await lead).kind).toBe('created');
      const [waiting] = await waitFor(async () => {
        const [rows] = await pool.query<RowDataPacket[]>(
          "SELECT id FROM information_schema.processlist WHERE db = ? AND info LIKE 'insert into deliveries%' AND id <> CONNECTION_ID()",
          [name],
        );
        return rows.length > 0 ? rows : undefined;
      });
      await pool.query(`KILL CONNECTION ${Number(waiting?.id)}`);
      await waitFor(async () => (reports.length > 1 ? true : undefined));
      // Let the held row go before awaiting the neighbours: 'dirz-b', published on its own, waits
      // for it while holding gap locks on the message index (its duplicate check met the batch's
      // rolled-back rows), which the neighbours' own INSERTs would queue behind.
      await holder.query('ROLLBACK');
      // Had the messages committed without their deliveries, these would find their own rows
      // (200 duplicate) and stay without deliveries for good.
      const [b, c, d] = await Promise.all(batch);
      expect([b?.kind, c?.kind, d?.kind]).toEqual(['created', 'created', 'created']);
      expect(reports[1]).toMatchObject({ kind: 'direct', size: 3, statements: 1, fallbacks: ['failed'] });
      expect(moves).toHaveLength(4);
      const stored = await deliveryCounts('dirz-');
      expect(stored.size).toBe(4);
      for (const [, m] of stored) expect(m).toEqual({ status: 'confirmed', deliveries: 2 });
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
  });

  it('answers 200 with the stored message when a batch\'s COMMIT succeeded but its answer was lost: nothing stored twice, no message without deliveries', async () => {
    // The real COMMIT runs (alone, or at the end of a folded trip); then the connection is destroyed and the driver's error for a lost
    // connection thrown, as when the network drops between the COMMIT and its answer.
    // The second COMMIT: the first is the lone lead's batch.
    let commits = 0;
    const losing = new Proxy(pool, {
      get(target, prop) {
        if (prop !== 'getConnection') {
          const value = Reflect.get(target, prop) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        }
        return async () => {
          const conn = await target.getConnection();
          const query = conn.query.bind(conn) as (q: unknown, v?: unknown) => Promise<unknown>;
          Object.assign(conn, {
            query: async (q: unknown, v?: unknown) => {
              const answer = await query(q, v);
              if (/(^|;\s*)commit$/i.test(typeof q === 'string' ? q : (q as { sql: string }).sql) && ++commits === 2) {
                conn.destroy();
                throw Object.assign(new Error('Connection lost: The server closed the connection.'), { fatal: true, code: 'PROTOCOL_CONNECTION_LOST' });
              }
              return answer;
            },
          });
          return conn;
        };
      },
    });
    const reports: WriteBatchReport[] = [];
    const moves: string[] = [];
    const r = new MessageRepository(createDb(losing), { maxBatchesInFlight: 1, onBatch: (b) => reports.push(b), onTransition: (from, to) => moves.push(`${from}->${to}`) });
    const lead = r.prepare(direct('dirx-lead'));
    const batch = [r.prepare(direct('dirx-a', { a: 1 })), r.prepare(direct('dirx-b')), r.prepare(direct('dirx-a', { a: 1 })), r.prepare(direct('dirx-a', { a: 2 }))];
    expect((await lead).kind).toBe('created');
    const results = await Promise.all(batch);
    expect(reports[1]).toMatchObject({ kind: 'direct', size: 4, statements: 1, fallbacks: ['duplicate', 'failed'] });
    expect(results.map((x) => x.kind)).toEqual(['duplicate', 'duplicate', 'duplicate', 'conflict']);
    expect(results[0]?.message).toMatchObject({ id: 'dirx-a', status: 'confirmed', payload: { a: 1 } });
    // Committed, but not seen to commit: left out of the transition counts.
    expect(moves).toEqual(['new->confirmed']);
    const stored = await deliveryCounts('dirx-');
    expect(stored.size).toBe(3);
    for (const [, m] of stored) expect(m).toEqual({ status: 'confirmed', deliveries: 2 });
  });

  it('sheds direct publishes beyond maxQueuedWrites, and publishes the others', async () => {
    const { repo: r } = observed({ maxQueuedWrites: 2 });
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => r.prepare(direct(`dirq-${i}`))));
    expect(results.map((x) => (x.status === 'fulfilled' ? x.value.kind : x.reason instanceof WriteQueueFullError))).toEqual(['created', 'created', 'created', true, true]);
  });

  it('writes a fan-out larger than max_allowed_packet in several INSERTs, so direct-publish and confirm batches do not fail on it', async () => {
    // One multi-row INSERT of every delivery of a batch exceeded the packet: MariaDB dropped the
    // connection (ECONNRESET), and every batch on such a topic fell back to one transaction per
    // message. 200 messages with 128-character ids, each delivery row at least 250 bytes of SQL.
    const [[limit]] = await pool.query<RowDataPacket[]>('SELECT @@max_allowed_packet AS packet');
    const fan = Math.ceil((Number(limit?.packet) * 1.25) / (200 * 250));
    const now = new Date();
    const ids = Array.from({ length: fan }, (_, i) => `sub_wide_${String(i).padStart(5, '0')}_${randomBytes(12).toString('hex')}`.slice(0, 40));
    await createDb(pool).insert(subscriptions).values(ids.map((id) => ({
      id, name: id, topicPattern: 'wide.#', targetType: 'webhook', target: JSON.stringify({ type: 'webhook', url: 'http://x/h' }),
      maxAttempts: 3, backoffInitialMs: 100, backoffMaxMs: 1000, enabled: true, disabledReason: null, secret: 'whsec_x', previousSecret: null, previousSecretExpiresAt: null, createdAt: now, updatedAt: now,
    })));
    try {
      const longId = (kind: string, i: number) => `${kind}-${String(i).padStart(3, '0')}-`.padEnd(128, 'w');
      const { repo: r, reports } = observed();
      const published = await Promise.all([r.prepare(direct('wide-lead', {}, 'wide.fan')), ...Array.from({ length: 200 }, (_, i) => r.prepare(direct(longId('wided', i), {}, 'wide.fan')))]);
      expect(reports.filter((b) => b.fallbacks.length > 0)).toEqual([]);
      expect(reports.map((b) => b.size)).toEqual([1, 200]);
      expect(published.every((x) => x.kind === 'created' && x.fanOut.deliveries.length === fan)).toBe(true);

      for (let i = 0; i < 201; i++) await r.prepare({ id: longId('widec', i), topic: 'wide.fan', payload: {}, checkUrl: 'http://x/c' });
      reports.length = 0;
      const confirmed = await Promise.all(Array.from({ length: 201 }, (_, i) => r.decide(def(longId('widec', i)), 'confirm')));
      expect(reports.filter((b) => b.fallbacks.length > 0)).toEqual([]);
      expect(reports.map((b) => b.size)).toEqual([1, 200]);
      expect(confirmed.every((x) => x.kind === 'applied' && x.fanOut.deliveries.length === fan)).toBe(true);
      const [[count]] = await pool.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM deliveries WHERE message_id LIKE 'wide%'");
      expect(Number(count?.n)).toBe(402 * fan);
    } finally {
      await pool.query('DELETE FROM subscriptions WHERE id IN (?)', [ids]);
    }
  }, 120_000);

  it('publishes each message in its own transaction with maxBatchesInFlight 0', async () => {
    const { repo: r, reports, moves } = observed({ maxBatchesInFlight: 0 });
    const results = await Promise.all(Array.from({ length: 3 }, (_, i) => r.prepare(direct(`dir0-${i}`))));
    expect(results.every((x) => x.kind === 'created' && x.fanOut.deliveries.length === 2)).toBe(true);
    expect(reports).toEqual([]);
    expect(moves).toEqual(['new->confirmed', 'new->confirmed', 'new->confirmed']);
  });
});

/** Polls `read` until it returns something (at most 5 s). */
async function waitFor<T>(read: () => Promise<T | undefined>): Promise<T> {
  for (const deadline = Date.now() + 5_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
    const value = await read();
    if (value !== undefined) return value;
  }
  throw new Error('timed out waiting');
}
