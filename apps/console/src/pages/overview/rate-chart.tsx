const SERIES = [
  { key: 'created', label: 'created', class: 'created' },
  { key: 'confirmed', label: 'confirmed', class: 'confirmed' },
  { key: 'delivered', label: 'delivered', class: 'delivered' },
] as const;

const W = 600;
const H = 160;

/** The last hour per minute, as plain SVG lines; the totals are also written out as text. */
export function RateChart(props: { rates: { minutes: string[]; created: number[]; confirmed: number[]; delivered: number[] } }) {
  const { rates } = props;
  const max = Math.max(1, ...rates.created, ...rates.confirmed, ...rates.delivered);
  const n = Math.max(1, rates.minutes.length - 1);
  const points = (values: number[]) => values.map((v, i) => `${((i / n) * W).toFixed(1)},${(H - (v / max) * (H - 10)).toFixed(1)}`).join(' ');
  const total = (values: number[]) => values.reduce((a, b) => a + b, 0);
  const summary = SERIES.map((s) => `${total(rates[s.key])} ${s.label}`).join(', ');
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={`Per minute over the last hour: ${summary}; busiest minute ${max}`}>
        <line x1="0" y1={H} x2={W} y2={H} class="axis" />
        {SERIES.map((s) => (
          <polyline key={s.key} points={points(rates[s.key])} class={`series ${s.class}`} />
        ))}
      </svg>
      <figcaption>
        {SERIES.map((s) => (
          <span key={s.key} class={`legend ${s.class}`}>
            {s.label}: {total(rates[s.key])}
          </span>
        ))}{' '}
        in the last hour (peak {max}/min)
      </figcaption>
    </figure>
  );
}
