import { useRates, useStats } from '../../hooks/resources';
import { Notice } from '../../components/notice';
import { Time } from '../../components/time';
import { RateChart } from './rate-chart';

const num = (v: unknown) => (typeof v === 'number' ? v.toLocaleString('en') : '—');

/** Counts by state, backlog, dead, unresolved, the oldest open transaction, and the last hour. */
export function Overview() {
  const stats = useStats();
  const rates = useRates();
  const s = stats.data as
    | { messages?: Record<string, number>; deliveries?: { pending?: number; dead?: number }; countsCappedAt?: number; oldestPrepared?: { id: string; createdAt: string; ageMs: number } | null }
    | undefined;
  return (
    <>
      <h1>Overview</h1>
      <section aria-label="Counts">
        <h2>Counts</h2>
        {stats.loading && !s ? (
          <p>Loading…</p>
        ) : !s ? (
          <Notice kind="info">Stats not available{stats.status ? ` (Herald answered ${stats.status})` : ''}.</Notice>
        ) : (
          <dl class="tiles">
            {Object.entries(s.messages ?? {}).map(([status, n]) => (
              <div key={status}>
                <dt>{status}</dt>
                <dd>{num(n)}</dd>
              </div>
            ))}
            <div>
              <dt>backlog (pending deliveries)</dt>
              <dd>{num(s.deliveries?.pending)}</dd>
            </div>
            <div>
              <dt>dead deliveries</dt>
              <dd>{num(s.deliveries?.dead)}</dd>
            </div>
            <div>
              <dt>oldest prepared</dt>
              <dd>
                {s.oldestPrepared ? (
                  <a href={`#/messages/${encodeURIComponent(s.oldestPrepared.id)}`}>
                    {s.oldestPrepared.id}, {Math.round(s.oldestPrepared.ageMs / 1000)} s old (<Time at={s.oldestPrepared.createdAt} />)
                  </a>
                ) : (
                  'none'
                )}
              </dd>
            </div>
          </dl>
        )}
        {s?.countsCappedAt !== undefined && <p class="hint">Counts stop at {num(s.countsCappedAt)}.</p>}
      </section>
      <section aria-label="Last hour">
        <h2>Last hour</h2>
        {rates.data ? <RateChart rates={rates.data} /> : rates.error ? <Notice kind="error">{rates.error}</Notice> : <p>Loading…</p>}
      </section>
    </>
  );
}
