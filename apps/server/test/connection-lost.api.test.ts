import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { sql } from 'drizzle-orm';
import { createConnection } from 'mysql2/promise';
import { createDatabasePool, createDb, WriteQueueFullError } from '@herald/db';
import { installErrorHandling } from '../src/plugins/errors';
import { createTestDatabase, MYSQL_SERVER } from './helpers';

// Found by the chaos suite: MariaDB restarting under a transaction answered 500. The connection
// dies inside the transaction, drizzle's ROLLBACK on that dead connection fails too, and the
// error that reaches the handler is "Failed query: rollback" caused by mysql2's fatal "closed
// state" error, with no driver code. It is an outage, not a bug: 503 with Retry-After.
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase('lost');
});
afterAll(async () => {
  await db?.drop();
});

/** Runs a transaction whose connection is killed half-way, and returns what it throws. */
async function transactionOnDeadConnection(): Promise<unknown> {
  const pool = createDatabasePool({ url: db.url, connectionLimit: 1 });
  const killer = await createConnection(MYSQL_SERVER);
  try {
    await createDb(pool).transaction(async (tx) => {
      const [rows] = (await tx.execute(sql`SELECT CONNECTION_ID() AS id`)) as unknown as [Array<{ id: number | string }>];
      await killer.query(`KILL CONNECTION ${Number(rows[0]!.id)}`);
      await tx.execute(sql`SELECT 1`);
    });
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await killer.end();
    await pool.end().catch(() => undefined);
  }
}

describe('a MySQL connection lost inside a transaction', () => {
  it('is answered 503 with Retry-After, not 500', async () => {
    const error = await transactionOnDeadConnection();
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/^Failed query: rollback/);
    const app = Fastify({ logger: false });
    installErrorHandling(app, 1024);
    app.get('/tx', async () => {
      throw error;
    });
    const res = await app.inject({ url: '/tx' });
    expect(res.statusCode, res.body).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    await app.close();
  });
});

describe('a write refused because too many writes wait for MySQL', () => {
  it('is answered 503 with Retry-After, so the client backs off instead of queueing', async () => {
    const app = Fastify({ logger: false });
    installErrorHandling(app, 1024);
    app.get('/full', async () => {
      throw new WriteQueueFullError(2_000);
    });
    const res = await app.inject({ url: '/full' });
    expect(res.statusCode, res.body).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    await app.close();
  });
});
