import { selectSql, toDate } from './sql.runner';
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

export interface SubscriptionHealth {
  subscriptionId: string;
  delivered: number;
  dead: number;
  /** The error of the delivery that died last in the window. */
  lastError: string | null;
  lastDeadAt: Date | null;
}

const DELIVERED_BY_SUBSCRIPTION = 'SELECT subscription_id AS s, COUNT(*) AS n FROM deliveries WHERE delivered_at >= ? GROUP BY subscription_id';
// One range of ix_deliveries_subscription_status per subscription; the last error is read only
// for subscriptions that had a dead delivery.
const DEAD_BY_SUBSCRIPTION = "SELECT subscription_id AS s, COUNT(*) AS n, MAX(dead_at) AS last FROM deliveries WHERE subscription_id IN (?) AND status = 'dead' AND dead_at >= ? GROUP BY subscription_id";
const LAST_DEAD_ERROR = "SELECT last_error AS e FROM deliveries WHERE subscription_id = ? AND status = 'dead' ORDER BY dead_at DESC LIMIT 1";

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

  /** Delivered and dead counts of `subscriptionIds` over the last `windowMs`, with the last error. */
  async subscriptionHealth(subscriptionIds: readonly string[], windowMs: number): Promise<SubscriptionHealth[]> {
    if (subscriptionIds.length === 0) return [];
    const since = new Date(this.now().getTime() - windowMs);
    const [delivered, dead] = await Promise.all([
      selectSql<{ s: string; n: number | string }>(this.db, DELIVERED_BY_SUBSCRIPTION, [since]),
      selectSql<{ s: string; n: number | string; last: string | null }>(this.db, DEAD_BY_SUBSCRIPTION, [[...subscriptionIds], since]),
    ]);
    const deliveredBy = new Map(delivered.map((r) => [r.s, Number(r.n)]));
    const deadBy = new Map(dead.map((r) => [r.s, r]));
    return Promise.all(
      subscriptionIds.map(async (id) => {
        const d = deadBy.get(id);
        const [last] = d ? await selectSql<{ e: string | null }>(this.db, LAST_DEAD_ERROR, [id]) : [];
        return { subscriptionId: id, delivered: deliveredBy.get(id) ?? 0, dead: d ? Number(d.n) : 0, lastError: last?.e ?? null, lastDeadAt: d?.last ? toDate(d.last) : null };
      }),
    );
  }
}
