import { Time } from '../../components/time';
import type { TimelineEvent } from './timeline-events';

export function TimelineList(props: { events: TimelineEvent[] }) {
  return (
    <ol class="timeline" aria-label="Timeline">
      {props.events.map((e, i) => (
        <li key={i} class={`event ${e.kind} ${e.ok === false ? 'failed' : ''}`}>
          <Time at={e.at} />
          <strong>{e.title}</strong>
          {e.details.length > 0 && <span class="details">{e.details.join(' · ')}</span>}
          {e.excerpt && (
            <details>
              <summary>Response excerpt</summary>
              <pre>{e.excerpt}</pre>
            </details>
          )}
        </li>
      ))}
    </ol>
  );
}
