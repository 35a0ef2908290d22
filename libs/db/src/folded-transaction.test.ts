import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection, type Pool, type RowDataPacket } from 'mysql2/promise';
import { createDatabasePool, createDb, ensureDatabase, type HeraldDb } from './index';
import { foldedTransaction } from './folded-transaction';
import { FAIL_UNLESS_ROW_COUNT } from './sql.runner';

const server = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const name = `herald_test_fold_${randomBytes(4).toString('hex')}`;
const url = `${server}/${name}`;
let pool: Pool;
let db: HeraldDb;

beforeAll(async () => {
  await ensureDatabase({ url });
  // One connection: every transaction reuses the connection the one before it handed back.
  pool = createDatabasePool({ url, connectionLimit: 1 });
  db = createDb(pool);
  await pool.query('CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10) NOT NULL)');
});

afterAll(async () => {
  await pool?.end();
  const c = await createConnection(server);
  await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await c.end();
});

const ids = async () => (await pool.query<RowDataPacket[]>('SELECT id FROM t ORDER BY id'))[0].map((r) => Number(r.id));
const inTransaction = async () => Number((await pool.query<RowDataPacket[]>('SELECT @@in_transaction AS open'))[0][0]?.open);

describe('foldedTransaction', () => {
  it('answers each statement of a trip in order and commits with the last trip', async () => {
    const answers = await foldedTransaction(db, async (tx) => {
      const first = await tx.send([['INSERT INTO t VALUES ?', [[[1, 'a'], [2, 'b']]]], ['SELECT id, v FROM t WHERE id IN (?) ORDER BY id', [[1, 2]]]]);
      const second = await tx.send([['UPDATE t SET v = ? WHERE id = ?', ['c', 2]]], { commit: true });
      return [...first, ...second];
    });
    expect((answers[0] as { affectedRows: number }).affectedRows).toBe(2);
    expect(answers[1]).toEqual([{ id: 1, v: 'a' }, { id: 2, v: 'b' }]);
    expect((answers[2] as { affectedRows: number }).affectedRows).toBe(1);
    expect(await ids()).toEqual([1, 2]);
    expect(await inTransaction()).toBe(0);
  });

  it('rolls back everything when a statement in the middle of a trip fails, and the statements after it never run', async () => {
    await expect(
      foldedTransaction(db, async (tx) => {
        await tx.send([['INSERT INTO t VALUES (?, ?)', [3, 'x']]]);
        // The duplicate fails; the INSERT of 5 and the COMMIT after it must not run.
        await tx.send([['INSERT INTO t VALUES (?, ?)', [4, 'y']], ['INSERT INTO t VALUES (?, ?)', [1, 'dup']], ['INSERT INTO t VALUES (?, ?)', [5, 'z']]], { commit: true });
      }),
    ).rejects.toMatchObject({ code: 'ER_DUP_ENTRY' });
    expect(await ids()).toEqual([1, 2]);
    expect(await inTransaction()).toBe(0);
  });

  it('rolls back when the work throws between trips', async () => {
    await expect(
      foldedTransaction(db, async (tx) => {
        await tx.send([['INSERT INTO t VALUES (?, ?)', [6, 'w']]]);
        throw new Error('decided against it');
      }),
    ).rejects.toThrow('decided against it');
    expect(await ids()).toEqual([1, 2]);
    expect(await inTransaction()).toBe(0);
  });

  it('stops a trip before its COMMIT when the row-count guard finds the statement before it changed another number of rows', async () => {
    const trip = (expected: number) =>
      foldedTransaction(db, (tx) =>
        tx.send([['UPDATE t SET v = ? WHERE id IN (?)', ['g', [1, 2, 404]]], [FAIL_UNLESS_ROW_COUNT, [expected]], ['INSERT INTO t VALUES (?, ?)', [10, 'after']]], { commit: true }),
      );
    await expect(trip(3)).rejects.toMatchObject({ code: 'ER_TOO_MANY_ROWS' });
    expect(await ids()).toEqual([1, 2]);
    expect(await inTransaction()).toBe(0);
    await trip(2);
    expect(await ids()).toEqual([1, 2, 10]);
    await pool.query('DELETE FROM t WHERE id = 10');
  });

  it('destroys a connection killed mid-transaction instead of handing it back, and nothing of it commits', async () => {
    const admin = await createConnection(url);
    try {
      await expect(
        foldedTransaction(db, async (tx) => {
          const [[row]] = (await tx.send([['INSERT INTO t VALUES (?, ?)', [7, 'k']], ['SELECT CONNECTION_ID() AS id']])).slice(1) as [Array<{ id: number }>];
          await admin.query('KILL CONNECTION ?', [Number(row?.id)]);
          await tx.send([['INSERT INTO t VALUES (?, ?)', [8, 'k']]], { commit: true });
        }),
      ).rejects.toThrow();
    } finally {
      await admin.end();
    }
    // The pool's one connection was replaced: the next transaction works.
    await foldedTransaction(db, (tx) => tx.send([['INSERT INTO t VALUES (?, ?)', [9, 'ok']]]));
    expect(await ids()).toEqual([1, 2, 9]);
  });
});
