import { selectSql } from './sql.runner';
import type { HeraldDb } from './connection';

export interface MinuteRates {
  /** Start of each minute, oldest first; the last one is the current, partial minute. */
  minutes: Date[];
  created: number[];
  confirmed: number[];
  delivered: number[];
}

// Each count reads only the index range of its window (ix_messages_created,
// ix_messages_confirmed, ix_deliveries_delivered): the cost grows with the last hour's traffic,
// never with the size of the tables.
const COUNTS = {
  created: 'SELECT TIMESTAMPDIFF(MINUTE, ?, created_at) AS m, COUNT(*) AS n FROM messages WHERE created_at >= ? GROUP BY m',
  confirmed: 'SELECT TIMESTAMPDIFF(MINUTE, ?, confirmed_at) AS m, COUNT(*) AS n FROM messages WHERE confirmed_at >= ? GROUP BY m',
  delivered: 'SELECT TIMESTAMPDIFF(MINUTE, ?, delivered_at) AS m, COUNT(*) AS n FROM deliveries WHERE delivered_at >= ? GROUP BY m',
} as const;

/** Per-minute counts of recent activity, for the console's overview. */
export class RateRepository {
  constructor(
    private readonly db: HeraldDb,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async perMinute(minutes = 60): Promise<MinuteRates> {
    const currentMinute = Math.floor(this.now().getTime() / 60_000) * 60_000;
    const start = new Date(currentMinute - (minutes - 1) * 60_000);
    const series = async (sql: string) => {
      const counts = new Array<number>(minutes).fill(0);
      const rows = await selectSql<{ m: number | string; n: number | string }>(this.db, sql, [start, start]);
      for (const row of rows) {
        const m = Number(row.m);
        if (m >= 0 && m < minutes) counts[m] = Number(row.n);
      }
      return counts;
    };
    const [created, confirmed, delivered] = await Promise.all([series(COUNTS.created), series(COUNTS.confirmed), series(COUNTS.delivered)]);
    return { minutes: Array.from({ length: minutes }, (_, i) => new Date(start.getTime() + i * 60_000)), created, confirmed, delivered };
  }
}
