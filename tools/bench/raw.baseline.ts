import type { Pool } from 'mysql2/promise';
import type { ConfirmChannel } from 'amqplib';
import { closedLoop, type LoadResult } from './load.generator';

/** The row naive code would write for one message: the same columns and indexes as Herald's. */
export const RAW_TABLE = 'raw_messages';

export async function createRawTable(pool: Pool): Promise<void> {
  await pool.query(`CREATE TABLE IF NOT EXISTS ${RAW_TABLE} LIKE messages`);
}

/**
 * The raw MySQL limit Herald is compared with: per message, one autocommit prepared `INSERT` of
 * a prepared row, then one autocommit `UPDATE` confirming it — what a service writing its own
 * outbox row naively does, at the same concurrency, on the same server and settings.
 */
export async function rawMysqlBaseline(pool: Pool, runId: string, concurrency: number, durationMs: number, payload: unknown): Promise<{ load: LoadResult; latencies: number[] }> {
  const latencies: number[] = [];
  const body = JSON.stringify(payload);
  const load = await closedLoop(concurrency, durationMs, async (seq) => {
    const id = `${runId}-raw${concurrency}-${seq}`;
    const started = performance.now();
    const now = new Date();
    await pool.execute(
      `INSERT INTO ${RAW_TABLE} (id, topic, message_key, payload, headers, status, check_url, check_after_ms, check_interval_ms, max_checks, on_checks_exhausted, delay_ms, checks, next_check_at, content_hash, created_at, updated_at)
       VALUES (?, 'bench.raw', NULL, ?, '{}', 'prepared', 'http://127.0.0.1:9/check', 600000, 10000, 15, 'rollback', 0, 0, ?, ?, ?, ?)`,
      [id, body, new Date(now.getTime() + 600_000), 'f'.repeat(64), now, now],
    );
    const [result] = await pool.execute(`UPDATE ${RAW_TABLE} SET status = 'confirmed', next_check_at = NULL, updated_at = ?, confirmed_at = ? WHERE id = ? AND status = 'prepared'`, [
      new Date(),
      new Date(),
      id,
    ]);
    if ((result as { affectedRows: number }).affectedRows !== 1) throw new Error(`raw update of ${id} changed no row`);
    latencies.push(performance.now() - started);
  });
  return { load, latencies };
}

/**
 * The raw RabbitMQ limit: persistent, mandatory publishes on one confirm channel, each awaited
 * until the broker confirms it, at the same concurrency — what Herald's publisher does per
 * delivery, without Herald.
 */
export async function rawAmqpBaseline(
  channel: ConfirmChannel,
  exchange: string,
  runId: string,
  concurrency: number,
  durationMs: number,
  payload: unknown,
): Promise<{ load: LoadResult; latencies: number[]; publishedAt: Map<string, number> }> {
  const latencies: number[] = [];
  const publishedAt = new Map<string, number>();
  const body = JSON.stringify(payload);
  const load = await closedLoop(concurrency, durationMs, async (seq) => {
    const id = `${runId}-rawamqp${concurrency}-${seq}`;
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      channel.publish(
        exchange,
        'bench.raw',
        Buffer.from(body, 'utf8'),
        { persistent: true, mandatory: true, messageId: id, contentType: 'application/json', headers: { 'herald-topic': 'bench.raw' } },
        (err) => (err ? reject(new Error(`nack: ${String(err)}`)) : resolve()),
      );
    });
    const done = performance.now();
    latencies.push(done - started);
    publishedAt.set(id, done);
  });
  return { load, latencies, publishedAt };
}
