import type { Redis } from 'ioredis';
import type { Pool, RowDataPacket } from 'mysql2/promise';

/** MySQL's statement counters and Redis's command counters at one moment. */
export interface CounterSnapshot {
  mysql: Map<string, number>;
  redis: Map<string, number>;
}

/**
 * Server-wide counters: MariaDB's `Com_*` and `Questions` (statements sent by clients, one round
 * trip each: Herald sends no multi-statement text) and Redis's `INFO commandstats` calls per
 * command. They count every client of the servers, so a delta means something only while the
 * benchmark is all that runs — `--count` says so next to its figures.
 */
export async function snapshotCounters(mysql: Pool, redis: Redis): Promise<CounterSnapshot> {
  const [rows] = await mysql.query<RowDataPacket[]>("SHOW GLOBAL STATUS WHERE Variable_name LIKE 'Com\\_%' OR Variable_name = 'Questions'");
  const mysqlCounts = new Map<string, number>();
  for (const r of rows) mysqlCounts.set(String(r.Variable_name), Number(r.Value));
  const redisCounts = new Map<string, number>();
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m?.[1] && m[2]) redisCounts.set(m[1], Number(m[2]));
  }
  return { mysql: mysqlCounts, redis: redisCounts };
}

/**
 * Per-operation deltas between two snapshots, the counters that moved only, rounded to 0.01.
 * The snapshots' own `SHOW GLOBAL STATUS` and `INFO` are left out.
 */
export function countersPerOp(before: CounterSnapshot, after: CounterSnapshot, ops: number) {
  const delta = (a: Map<string, number>, b: Map<string, number>, own: Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const [k, v] of b) {
      const d = v - (a.get(k) ?? 0) - (own[k] ?? 0);
      if (d > 0 && ops > 0) out[k] = Math.round((d / ops) * 100) / 100;
    }
    return out;
  };
  const mysql = delta(before.mysql, after.mysql, { Questions: 1, Com_show_status: 1 });
  const redis = delta(before.redis, after.redis, { info: 1 });
  return { mysql, redis, redisCommands: Math.round(Object.values(redis).reduce((a, b) => a + b, 0) * 100) / 100 };
}
