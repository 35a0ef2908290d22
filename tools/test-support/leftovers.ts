import { createConnection } from 'mysql2/promise';
import { Redis } from 'ioredis';

const SAFE = /^[A-Za-z0-9_-]+$/;

/**
 * Deletes the keys under `prefix:` (SCAN + UNLINK), and only those: a Redis shared with others
 * is never flushed. Returns how many were deleted.
 */
export async function deleteKeysUnder(redisUrl: string, prefix: string): Promise<number> {
  if (!SAFE.test(prefix)) throw new Error(`refusing to delete keys under "${prefix}": not a plain prefix`);
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let deleted = 0;
    for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 1000 }) as AsyncIterable<string[]>) {
      if (keys.length) deleted += await redis.unlink(...keys);
    }
    return deleted;
  } finally {
    redis.disconnect();
  }
}

/** Key prefixes (the part before the first `:`) starting with `start`, with their key counts. */
export async function keyPrefixes(redisUrl: string, start: string): Promise<Map<string, number>> {
  if (!SAFE.test(start)) throw new Error(`not a plain prefix: "${start}"`);
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000, retryStrategy: () => null });
  try {
    await redis.connect();
    const found = new Map<string, number>();
    for await (const keys of redis.scanStream({ match: `${start}*`, count: 1000 }) as AsyncIterable<string[]>) {
      for (const key of keys) {
        const prefix = key.split(':')[0] ?? key;
        found.set(prefix, (found.get(prefix) ?? 0) + 1);
      }
    }
    return found;
  } finally {
    redis.disconnect();
  }
}

/** Databases whose name starts with `start`. */
export async function databasesStartingWith(mysqlServer: string, start: string): Promise<string[]> {
  if (!SAFE.test(start)) throw new Error(`not a plain prefix: "${start}"`);
  const c = await createConnection({ uri: mysqlServer, connectTimeout: 2_000 });
  try {
    const [rows] = await c.query('SHOW DATABASES');
    return (rows as Array<{ Database: string }>).map((r) => r.Database).filter((name) => name.startsWith(start));
  } finally {
    await c.end();
  }
}
