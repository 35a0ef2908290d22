import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection, type Pool, type PoolConnection, type RowDataPacket } from 'mysql2/promise';
import { createDatabasePool, ensureDatabase, MAX_PREPARED_STATEMENTS_PER_CONNECTION } from './index';

const server = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const name = `herald_test_conn_${randomBytes(4).toString('hex')}`;
const url = `${server}/${name}`;
let pool: Pool;

beforeAll(async () => {
  await ensureDatabase({ url });
  pool = createDatabasePool({ url, connectionLimit: 3 });
});

afterAll(async () => {
  await pool?.end();
  const c = await createConnection(server);
  await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await c.end();
});

/** The statement cache mysql2 gives each connection (an lru.min cache; not part of its public API). */
function statementCache(connection: PoolConnection): { max: number; size: number } {
  return (connection as unknown as { connection: { _statements: { max: number; size: number } } }).connection._statements;
}

describe('createDatabasePool', () => {
  // mysql2 allocates the slots of its per-connection statement cache up front: at its default
  // of 16,000, a pool of 20 held 10 MiB of heap that Herald never used.
  it('gives every connection a small prepared-statement cache', async () => {
    const connections = await Promise.all([pool.getConnection(), pool.getConnection(), pool.getConnection()]);
    try {
      for (const c of connections) expect(statementCache(c).max).toBe(MAX_PREPARED_STATEMENTS_PER_CONNECTION);
      expect(MAX_PREPARED_STATEMENTS_PER_CONNECTION).toBeLessThanOrEqual(1_000);
    } finally {
      for (const c of connections) c.release();
    }
  });

  it('still runs prepared statements, and more distinct ones than the cache holds', async () => {
    const connection = await pool.getConnection();
    try {
      for (let i = 0; i < MAX_PREPARED_STATEMENTS_PER_CONNECTION + 5; i++) {
        const [rows] = await connection.execute<RowDataPacket[]>(`SELECT ? + ${i} AS n`, [1]);
        expect(Number(rows[0]?.n)).toBe(1 + i);
      }
      expect(statementCache(connection).size).toBe(MAX_PREPARED_STATEMENTS_PER_CONNECTION);
    } finally {
      connection.release();
    }
  });
});
