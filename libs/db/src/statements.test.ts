import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asc, eq, inArray } from 'drizzle-orm';
import { getTableConfig } from 'drizzle-orm/mysql-core';
import { createConnection, type Pool } from 'mysql2/promise';
import { createDatabasePool, createDb, type HeraldDb } from './connection';
import { ClaimRepository } from './claim.repository';
import { attemptValues, DELIVERY_INSERT_BYTES, DELIVERY_ROW, deliveryInserts, INSERT_ATTEMPTS, INSERT_DELIVERIES, newDeliveryValues } from './delivery.statements';
import { hasErrorCode } from './driver-errors';
import { fanOut } from './fan-out';
import { INSERT_MESSAGES, MESSAGE_ROW, SELECT_MESSAGES_BY_ID } from './message.statements';
import { migrate } from './migrator';
import { toMessage } from './rows';
import { deliveries, deliveryAttempts } from './schema/deliveries';
import { messages, type MessageRow } from './schema/messages';
import { subscriptions, type SubscriptionRow } from './schema/subscriptions';
import { formatSql, runSql, selectSql } from './sql.runner';
import { SubscriptionRepository, toSubscription, withSecrets } from './subscription.repository';
import { SELECT_ENABLED_SUBSCRIPTIONS, SUBSCRIPTION_ROW } from './subscription.statements';

// The hot statements bypass drizzle's builder and decode rows themselves: these tests hold them
// to what drizzle wrote and read, value for value, in both directions.

const server = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const name = `herald_test_stm_${randomBytes(4).toString('hex')}`;
const url = `${server}/${name}`;
let pool: Pool;
let db: HeraldDb;

beforeAll(async () => {
  await migrate({ url });
  pool = createDatabasePool({ url });
  db = createDb(pool);
});

afterAll(async () => {
  await pool?.end();
  const c = await createConnection(server);
  await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await c.end();
});

/** Text that escaping gets wrong if it is done wrong: quotes, backslashes, placeholders, comments, NUL, non-BMP. */
const HOSTILE = `it's "quoted" \\ back\\\\slash ? ?? -- # /* */ \n\r\t \u0000 \u001a zß水🚀 \u2028 '); DROP TABLE messages; --`;

function messageRow(id: string, filled: boolean): Omit<MessageRow, 'seq'> {
  const at = (iso: string) => new Date(iso);
  return {
    tenant: 'default',
    id,
    topic: 'orders.paid',
    key: filled ? HOSTILE : null,
    payload: JSON.stringify(filled ? { text: HOSTILE, n: 1.5, list: [null, true] } : 0),
    headers: JSON.stringify(filled ? { 'x-note': HOSTILE } : {}),
    status: filled ? 'confirmed' : 'prepared',
    checkUrl: filled ? `http://x/c?q='${HOSTILE}` : null,
    checkAfterMs: 4_294_967_295,
    checkIntervalMs: 1,
    maxChecks: 65_535,
    onChecksExhausted: 'hold',
    delayMs: 0,
    checks: filled ? 3 : 0,
    nextCheckAt: filled ? null : at('1999-12-31T23:59:59.999Z'),
    contentHash: 'f'.repeat(64),
    createdAt: at('2026-03-04T05:06:07.089Z'),
    updatedAt: at('2026-03-04T05:06:07.000Z'),
    confirmedAt: filled ? at('2038-01-19T03:14:08.001Z') : null,
    cancelledAt: filled ? at('1970-01-01T00:00:00.000Z') : null,
    traceParent: filled ? `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` : null,
  };
}

describe('formatSql', () => {
  it('writes a Date as drizzle wrote it for a DATETIME(3) column (UTC, milliseconds)', () => {
    for (const iso of ['2026-03-04T05:06:07.089Z', '1970-01-01T00:00:00.000Z', '1969-07-20T20:17:40.5Z', '9999-12-31T23:59:59.999Z']) {
      const date = new Date(iso);
      expect(formatSql('?', [date])).toBe(`'${messages.createdAt.mapToDriverValue(date)}'`);
    }
  });

  it('escapes every value and leaves placeholders inside values alone', () => {
    expect(formatSql('SELECT ?, ?, ?, ?, ?', ["a'?", null, true, 12, 'b\\'])).toBe("SELECT 'a\\'?', NULL, true, 12, 'b\\\\'");
  });

  it('writes an array as a list and an array of arrays as row groups', () => {
    expect(formatSql('WHERE id IN (?)', [['a', 'b']])).toBe("WHERE id IN ('a', 'b')");
    expect(formatSql('VALUES ?', [[['a', 1], ['b', null]]])).toBe("VALUES ('a', 1), ('b', NULL)");
  });
});

describe('deliveryInserts', () => {
  const at = new Date('2026-03-04T05:06:07.089Z');
  const row = (i: number) => newDeliveryValues({ seq: BigInt(i), id: `msg-${i}`.padEnd(128, 'm') }, `sub-${i}`.padEnd(40, 's'), 'rabbitmq', at, at);

  it('keeps a usual batch (200 messages, two subscriptions each) one statement', () => {
    expect(deliveryInserts(Array.from({ length: 400 }, (_, i) => row(i)))).toHaveLength(1);
  });

  it('splits a fan-out into statements no larger than DELIVERY_INSERT_BYTES of SQL, every row once and in order', () => {
    const rows = Array.from({ length: 20_000 }, (_, i) => row(i));
    const chunks = deliveryInserts(rows);
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks) expect(Buffer.byteLength(formatSql(INSERT_DELIVERIES, [chunk]))).toBeLessThanOrEqual(DELIVERY_INSERT_BYTES);
    expect(chunks.flat()).toEqual(rows);
  });
});

describe('hot statements against drizzle', () => {
  it.each([
    ['messages', MESSAGE_ROW.columns, messages],
    ['deliveries', DELIVERY_ROW.columns, deliveries],
    ['subscriptions', SUBSCRIPTION_ROW.columns, subscriptions],
  ] as const)('list the columns of %s as the drizzle schema does, in its order', (_, columns, table) => {
    expect([...columns]).toEqual(getTableConfig(table).columns.map((c) => c.name));
  });

  it('store a message that drizzle reads back exactly as written (dates, nulls, hostile text)', async () => {
    const rows = [messageRow('stm-in-full', true), messageRow('stm-in-empty', false)];
    await runSql(db, INSERT_MESSAGES, [rows.map(MESSAGE_ROW.values)]);
    const read = await db.select().from(messages).where(inArray(messages.id, rows.map((r) => r.id))).orderBy(asc(messages.seq));
    expect(read).toEqual(rows.map((r) => ({ ...r, seq: expect.any(BigInt) })));
  });

  it('read a message that drizzle wrote exactly as drizzle reads it (bigint seq, Dates, nulls)', async () => {
    const rows = [messageRow('stm-out-full', true), messageRow('stm-out-empty', false)];
    await db.insert(messages).values(rows);
    const ids = rows.map((r) => r.id);
    const viaDrizzle = await db.select().from(messages).where(inArray(messages.id, ids)).orderBy(asc(messages.seq));
    const raw = (await selectSql<object>(db, SELECT_MESSAGES_BY_ID, [ids])).map(MESSAGE_ROW.decode).sort((a, b) => (a.seq < b.seq ? -1 : 1));
    expect(raw).toEqual(viaDrizzle);
    expect(typeof raw[0]?.seq).toBe('bigint');
    expect(raw.map(toMessage)).toEqual(viaDrizzle.map(toMessage));
  });

  it('read subscriptions as drizzle does: booleans, nullable dates and secrets', async () => {
    const now = new Date('2026-05-06T07:08:09.010Z');
    const sub = (id: string, enabled: boolean, extra: Partial<SubscriptionRow> = {}): SubscriptionRow => ({
      id, name: `${id} ${HOSTILE}`, topicPattern: 'stm.#', targetType: 'webhook', target: JSON.stringify({ type: 'webhook', url: `http://x/h?${HOSTILE}` }),
      maxAttempts: 65_535, backoffInitialMs: 0, backoffMaxMs: 4_294_967_295, enabled, disabledReason: null, secret: null, previousSecret: null,
      previousSecretExpiresAt: null, createdAt: now, updatedAt: now, ordering: 'none', ...extra,
    });
    await db.insert(subscriptions).values([
      sub('sub_stm_a', true, { secret: 'whsec_a', previousSecret: 'whsec_old', previousSecretExpiresAt: new Date('2026-05-07T00:00:00.001Z') }),
      sub('sub_stm_b', true, { ordering: 'key' }),
      sub('sub_stm_c', false, { disabledReason: 'gone' }),
    ]);
    const viaDrizzle = await db.select().from(subscriptions).where(eq(subscriptions.enabled, true)).orderBy(asc(subscriptions.id));
    const raw = (await selectSql<object>(db, SELECT_ENABLED_SUBSCRIPTIONS, [])).map(SUBSCRIPTION_ROW.decode).sort((a, b) => a.id.localeCompare(b.id));
    expect(raw).toEqual(viaDrizzle);
    expect(raw.map((s) => s.id)).toEqual(['sub_stm_a', 'sub_stm_b']);
    const enabled = (await SubscriptionRepository.enabledFor(db, ['stm.paid'])).sort((a, b) => a.id.localeCompare(b.id));
    expect(enabled).toEqual(viaDrizzle.map(withSecrets));
    expect(enabled[0]).toMatchObject({ secret: 'whsec_a', previousSecret: 'whsec_old' });
  });

  it('fan out deliveries that drizzle reads as written, and read attempt contexts as drizzle does (a deleted subscription too)', async () => {
    const now = new Date('2026-05-06T07:08:09.010Z');
    const message = { ...messageRow('stm-fan', true), topic: 'stm.paid', delayMs: 1_500 };
    const [inserted] = await db.insert(messages).values(message);
    const seq = BigInt(inserted.insertId);
    const fanOuts = await db.transaction((tx) => fanOut(tx, [{ ...message, seq }], now));
    const jobs = fanOuts.get(seq)?.jobs ?? [];
    expect(jobs).toHaveLength(2);
    const runAt = new Date(now.getTime() + 1_500);
    const written = await db.select().from(deliveries).where(eq(deliveries.messageId, message.id)).orderBy(asc(deliveries.id));
    expect(written).toEqual(['sub_stm_a', 'sub_stm_b'].map((subscriptionId, i) => ({
      id: jobs[i]?.deliveryId, messageSeq: seq, messageId: message.id, subscriptionId, targetType: 'webhook', status: 'pending', attempts: 0, generation: 0,
      nextAttemptAt: runAt, leaseUntil: null, lastError: null, lastStatusCode: null, createdAt: now, updatedAt: now, deliveredAt: null, deadAt: null,
      // sub_stm_b orders by key: the delivery joins its key's sequence, first and so due.
      orderKey: subscriptionId === 'sub_stm_b' ? `${message.tenant}/${message.key}/` : null, skippedAt: null,
    })));
    expect(fanOuts.get(seq)?.deliveries.map((d) => d.id)).toEqual(written.map((d) => d.id));

    // Every nullable column of the first delivery set, so that each is decoded from a value too.
    const [first, second] = written;
    await db.update(deliveries).set({
      leaseUntil: new Date('2026-05-06T07:09:00.123Z'), lastError: HOSTILE, lastStatusCode: 503, deliveredAt: new Date('2026-05-06T07:09:01.001Z'),
      deadAt: new Date('2026-05-06T07:09:02.002Z'), attempts: 7, generation: 2,
    }).where(eq(deliveries.id, first!.id));
    await db.delete(subscriptions).where(eq(subscriptions.id, 'sub_stm_b'));

    const repo = new ClaimRepository(db);
    const [viaDrizzle] = await db.select().from(deliveries).where(eq(deliveries.id, first!.id));
    const [storedMessage] = await db.select().from(messages).where(eq(messages.id, message.id));
    const [storedSub] = await db.select().from(subscriptions).where(eq(subscriptions.id, 'sub_stm_a'));
    const context = await repo.loadContext(first!.id);
    expect(context).toEqual({
      delivery: viaDrizzle,
      message: toMessage(storedMessage!),
      subscription: { ...toSubscription(storedSub!), secret: 'whsec_a', previousSecret: 'whsec_old', previousSecretExpiresAt: new Date('2026-05-07T00:00:00.001Z') },
    });
    expect(typeof context?.delivery.id).toBe('number');
    const orphan = await repo.loadContext(second!.id);
    expect(orphan?.delivery).toEqual(second);
    expect(orphan?.subscription).toBeUndefined();
    expect(await repo.loadContext(999_999_999)).toBeUndefined();
  });

  it('record attempts that drizzle reads back as written (boolean ok, nulls, hostile text)', async () => {
    const attempts = [
      { deliveryId: 1, generation: 0, attempt: 1, startedAt: new Date('2026-05-06T07:08:09.010Z'), durationMs: 0, ok: true, statusCode: 204, error: null, responseExcerpt: null },
      { deliveryId: 1, generation: 0, attempt: 2, startedAt: new Date('2026-05-06T07:08:10.999Z'), durationMs: 4_294_967_295, ok: false, statusCode: null, error: HOSTILE, responseExcerpt: HOSTILE },
    ];
    await runSql(db, INSERT_ATTEMPTS, [attempts.map(attemptValues)]);
    const read = await db.select().from(deliveryAttempts).where(eq(deliveryAttempts.deliveryId, 1)).orderBy(asc(deliveryAttempts.id));
    expect(read).toEqual(attempts.map((a) => ({ ...a, id: expect.any(Number) })));
  });

  it('take a lease that drizzle reads back at the millisecond', async () => {
    const now = new Date('2026-05-06T07:08:09.010Z');
    const [row] = await db.select().from(deliveries).where(eq(deliveries.messageId, 'stm-fan')).orderBy(asc(deliveries.id)).limit(1).offset(1);
    const repo = new ClaimRepository(db, { now: () => now });
    expect(await repo.claim({ deliveryId: row!.id, generation: 0, attempt: 0, runAt: now }, 12_345)).toBe(true);
    const [after] = await db.select().from(deliveries).where(eq(deliveries.id, row!.id));
    expect(after).toEqual({ ...row, leaseUntil: new Date(now.getTime() + 12_345), updatedAt: now });
  });

  it('report driver errors as drizzle did: wrapped, with the code in the cause chain', async () => {
    const row = messageRow('stm-dup', false);
    await runSql(db, INSERT_MESSAGES, [[MESSAGE_ROW.values(row)]]);
    const duplicate = await runSql(db, INSERT_MESSAGES, [[MESSAGE_ROW.values(row)]]).catch((e: unknown) => e);
    expect(hasErrorCode(duplicate, ['ER_DUP_ENTRY'])).toBe(true);
    expect((duplicate as Error).cause).toMatchObject({ code: 'ER_DUP_ENTRY', errno: 1062 });
    const viaDrizzle = await db.insert(messages).values(row).catch((e: unknown) => e);
    expect((duplicate as Error).constructor).toBe((viaDrizzle as Error).constructor);
    const tooLong = await runSql(db, INSERT_MESSAGES, [[MESSAGE_ROW.values({ ...row, id: 'stm-long', topic: 'x'.repeat(201) })]]).catch((e: unknown) => e);
    expect(hasErrorCode(tooLong, ['ER_DATA_TOO_LONG'])).toBe(true);
  });
});

describe('createDatabasePool', () => {
  it('captures no stack per query (mysql2 `trace`), and its errors keep their message and code', async () => {
    expect((pool as unknown as { pool: { config: { connectionConfig: { trace: boolean } } } }).pool.config.connectionConfig.trace).toBe(false);
    const error = await pool.query('SELECT * FROM no_such_table').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ER_NO_SUCH_TABLE', errno: 1146 });
    expect((error as Error).message).toContain('no_such_table');
  });
});
