import { createConnection, createPool, type Pool, type PoolOptions } from 'mysql2/promise';
import { drizzle, type MySql2Database } from 'drizzle-orm/mysql2';
import * as messageSchema from './schema/messages';
import * as deliverySchema from './schema/deliveries';
import * as subscriptionSchema from './schema/subscriptions';
import * as auditSchema from './schema/audit';

const schema = { ...messageSchema, ...deliverySchema, ...subscriptionSchema, ...auditSchema };

export type HeraldDb = MySql2Database<typeof schema> & { $client: Pool };

export interface DatabaseOptions {
  /** mysql://user:password@host:port/database */
  url: string;
  connectionLimit?: number;
  /** Fail fast when MySQL is unreachable, so the API can answer 503 instead of hanging. */
  connectTimeoutMs?: number;
}

const DATABASE_NAME = /^[A-Za-z0-9_]{1,64}$/;

/** The time zone mysql2 reads and writes DATETIMEs in (also used where Herald formats SQL itself). */
export const DB_TIMEZONE = 'Z';

export function databaseName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (!DATABASE_NAME.test(name)) {
    throw new Error(`DATABASE_URL must name a database of 1–64 characters of A-Z a-z 0-9 _ (got "${name}")`);
  }
  return name;
}

function baseOptions(url: string, options: DatabaseOptions): PoolOptions {
  return {
    uri: url,
    // Herald writes every timestamp itself in UTC; reading them back as strings and parsing
    // them as UTC keeps the server's and the database's time zones out of the picture.
    timezone: DB_TIMEZONE,
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    connectTimeout: options.connectTimeoutMs ?? 5_000,
    // mysql2 otherwise captures a stack trace per query to graft onto its errors (about 2 % of
    // Herald's CPU under load); errors keep their message, code and errno without it.
    trace: false,
  };
}

/** Creates the database named in the URL if it does not exist yet. */
export async function ensureDatabase(options: DatabaseOptions): Promise<void> {
  const name = databaseName(options.url);
  const server = new URL(options.url);
  server.pathname = '/';
  const connection = await createConnection(baseOptions(server.toString(), options));
  try {
    await connection.query(`CREATE DATABASE IF NOT EXISTS \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } finally {
    await connection.end();
  }
}

/**
 * Strict mode on every connection, whatever the server's default: a value that does not fit
 * its column is an error, never silently truncated or replaced.
 */
const SESSION_SQL_MODE = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION';

/**
 * Server-side prepared statements a pooled connection keeps. mysql2's default, 16,000, is
 * allocated up front as the slots of an LRU cache: about 0.5 MiB of heap per connection, 10 MiB
 * for a pool of 20, whether or not a statement is ever prepared (Herald's queries are text
 * queries). This leaves room for a set of fixed-shape prepared statements; a statement pushed
 * out of the cache is closed on the server and prepared again when next used.
 */
export const MAX_PREPARED_STATEMENTS_PER_CONNECTION = 256;

export function createDatabasePool(options: DatabaseOptions): Pool {
  const pool = createPool({
    ...baseOptions(options.url, options),
    connectionLimit: options.connectionLimit ?? 20,
    waitForConnections: true,
    queueLimit: 1_000,
    enableKeepAlive: true,
    maxPreparedStatements: MAX_PREPARED_STATEMENTS_PER_CONNECTION,
    // Folded transactions send several statements per round trip (folded-transaction.ts). Every
    // value reaches SQL through mysql2's escaping, never by concatenation, so this widens nothing.
    multipleStatements: true,
  });
  pool.pool.on('connection', (connection) => {
    // Queued on this connection ahead of any query that uses it.
    connection.query(`SET SESSION sql_mode = '${SESSION_SQL_MODE}'`, () => undefined);
  });
  return pool;
}

export function createDb(pool: Pool): HeraldDb {
  return drizzle({ client: pool, schema, mode: 'default' });
}
