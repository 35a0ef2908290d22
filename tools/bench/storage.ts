/**
 * Bytes per message on this MySQL: stores N typical messages (a 500-byte JSON payload, one
 * delivery, one attempt) as Herald writes them, runs ANALYZE TABLE and reads InnoDB's sizes.
 * Then purges them all and reports the rate. `npx tsx tools/bench/storage.ts [N]` (default 20 000);
 * its database is dropped afterwards.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import { createDatabasePool, createDb, migrate, PurgeRepository } from '@herald/db';

const SERVER = process.env.HERALD_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const N = Number(process.argv[2] ?? 20_000);
const TABLES = ['messages', 'deliveries', 'delivery_attempts', 'check_attempts'] as const;

/** A JSON object of about `bytes` bytes, like an order event. */
function payload(bytes: number): string {
  const base = { orderId: randomUUID(), customerId: `cus_${randomBytes(6).toString('hex')}`, amount: 4200, currency: 'EUR', items: [{ sku: 'sku-123', qty: 2 }], note: '' };
  const text = JSON.stringify(base);
  return JSON.stringify({ ...base, note: 'x'.repeat(Math.max(0, bytes - text.length)) });
}

async function main() {
  const name = `herald_storage_${randomBytes(4).toString('hex')}`;
  const url = `${SERVER}/${name}`;
  await migrate({ url });
  const c = await createConnection({ uri: url, timezone: 'Z' });
  try {
    const now = new Date();
    for (let from = 0; from < N; from += 1_000) {
      const ids = Array.from({ length: Math.min(1_000, N - from) }, () => randomUUID());
      await c.query(
        'INSERT INTO messages (id, topic, message_key, payload, headers, status, check_url, check_after_ms, check_interval_ms, max_checks, on_checks_exhausted, delay_ms, checks, next_check_at, content_hash, created_at, updated_at, confirmed_at, cancelled_at, trace_parent) VALUES ?',
        [ids.map((id) => [id, 'order.paid', `order-${id.slice(0, 8)}`, payload(500), '{}', 'delivered', 'https://orders.internal.example/herald/check', 5_000, 5_000, 10, 'rollback', 0, 0, null, createHash('sha256').update(id).digest('hex'), now, now, now, null, null])],
      );
      await c.query('INSERT INTO deliveries (message_id, subscription_id, target_type, status, attempts, generation, next_attempt_at, lease_until, last_status_code, created_at, updated_at, delivered_at) VALUES ?', [
        ids.map((id) => [id, `sub_${'a'.repeat(20)}`, 'webhook', 'delivered', 1, 0, null, null, 200, now, now, now]),
      ]);
      await c.query(
        "INSERT INTO delivery_attempts (delivery_id, generation, attempt, started_at, duration_ms, ok, status_code, error, response_excerpt) SELECT id, 0, 1, created_at, 12, 1, 200, NULL, 'ok' FROM deliveries WHERE message_id IN (?)",
        [ids],
      );
    }
    for (const t of TABLES) await c.query(`ANALYZE TABLE ${t}`);
    const [rows] = (await c.query(
      'SELECT TABLE_NAME AS t, TABLE_ROWS AS r, DATA_LENGTH AS d, INDEX_LENGTH AS i FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?)',
      [name, [...TABLES]],
    )) as unknown as [Array<{ t: string; r: number; d: number; i: number }>];
    let total = 0;
    console.log(`${N} messages, 500-byte payload, one delivery and one attempt each:`);
    console.log('| table | rows (estimate) | data bytes | index bytes | bytes per message |');
    console.log('|---|---|---|---|---|');
    for (const r of rows.sort((a, b) => TABLES.indexOf(a.t as never) - TABLES.indexOf(b.t as never))) {
      const per = (Number(r.d) + Number(r.i)) / N;
      total += per;
      console.log(`| ${r.t} | ${r.r} | ${r.d} | ${r.i} | ${per.toFixed(0)} |`);
    }
    console.log(`| total | | | | ${total.toFixed(0)} |`);
    // Then the purge of all of them, in the purger's batches of 500, one after the other.
    const pool = createDatabasePool({ url, connectionLimit: 2 });
    try {
      const purges = new PurgeRepository(createDb(pool));
      const started = performance.now();
      let removed = 0;
      for (;;) {
        const batch = await purges.purgeBatch('delivered', new Date(Date.now() + 60_000), 500);
        removed += batch.messages;
        if (batch.candidates < 500) break;
      }
      const seconds = (performance.now() - started) / 1000;
      console.log(`purged ${removed} messages (with their deliveries and attempts) in ${seconds.toFixed(2)} s: ${(removed / seconds).toFixed(0)} messages/s`);
    } finally {
      await pool.end();
    }
  } finally {
    await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await c.end();
  }
}

await main();
