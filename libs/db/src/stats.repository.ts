import type { HeraldDb } from './connection';
import { selectSql, toDate } from './sql.runner';

/** The tables that grow with traffic, as `GET /v1/stats` reports them. */
export const HERALD_TABLES = ['messages', 'deliveries', 'delivery_attempts', 'check_attempts', 'subscriptions'] as const;

export interface TableSize {
  name: string;
  /** InnoDB's estimate (from its sampled statistics), not a count. */
  rows: number;
  dataBytes: number;
  indexBytes: number;
}

/**
 * Figures that stay cheap on a hundred million rows: sizes come from `information_schema`
 * (InnoDB's estimates, refreshed by its statistics), the oldest prepared message from one index probe.
 */
export class StatsRepository {
  constructor(private readonly db: HeraldDb) {}

  async tableSizes(): Promise<TableSize[]> {
    const rows = await selectSql<{ name: string; table_rows: string | number | null; data_length: string | number | null; index_length: string | number | null }>(
      this.db,
      'SELECT TABLE_NAME AS name, TABLE_ROWS AS table_rows, DATA_LENGTH AS data_length, INDEX_LENGTH AS index_length FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?)',
      [[...HERALD_TABLES]],
    );
    const byName = new Map(rows.map((r) => [r.name, r]));
    return HERALD_TABLES.flatMap((name) => {
      const r = byName.get(name);
      return r ? [{ name, rows: Number(r.table_rows ?? 0), dataBytes: Number(r.data_length ?? 0), indexBytes: Number(r.index_length ?? 0) }] : [];
    });
  }

  /** The prepared message stored first (lowest seq, through the status/seq index), or undefined. */
  async oldestPrepared(): Promise<{ id: string; createdAt: Date } | undefined> {
    const [row] = await selectSql<{ id: string; created_at: string }>(this.db, "SELECT id, created_at FROM messages FORCE INDEX (ix_messages_status_seq) WHERE status = 'prepared' ORDER BY seq LIMIT 1", []);
    return row && { id: row.id, createdAt: toDate(row.created_at) };
  }
}
