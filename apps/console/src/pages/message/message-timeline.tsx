import { useState } from 'preact/hooks';
import { useAudit, useDeliveries, useMessage } from '../../hooks/resources';
import { Notice } from '../../components/notice';
import { Time } from '../../components/time';
import { MessageActions } from './message-actions';
import { timelineEvents } from './timeline-events';
import { TimelineList } from './timeline-list';

/** One message: its fields, everything that happened to it, and (for admins) what can be done. */
export function MessageTimeline(props: { id: string; tenant?: string; canAct: boolean }) {
  const [round, setRound] = useState(0);
  const message = useMessage(props.id, round, props.tenant);
  const deliveries = useDeliveries(props.id, round, props.tenant);
  const audit = useAudit({ targetType: 'message', targetId: props.id, limit: 200, ...(props.tenant && { tenant: props.tenant }) }, round);
  const m = message.data;
  if (!m) return message.error ? <Notice kind="error">{message.error}</Notice> : <p>Loading…</p>;
  return (
    <>
      <h1>
        Message {m.id} <span class={`badge ${m.status}`}>{m.status}</span>
      </h1>
      <dl class="fields">
        <dt>Tenant</dt>
        <dd>{m.tenant}</dd>
        <dt>Topic</dt>
        <dd>{m.topic}</dd>
        <dt>Key</dt>
        <dd>{m.key ?? '—'}</dd>
        <dt>Created</dt>
        <dd>
          <Time at={m.createdAt} />
        </dd>
        <dt>Checks</dt>
        <dd>
          {m.checks} of {m.maxChecks} (then {m.onChecksExhausted})
        </dd>
        <dt>Next check</dt>
        <dd>
          <Time at={m.nextCheckAt} />
        </dd>
      </dl>
      {props.canAct && <MessageActions key={`${m.tenant}/${m.id}`} message={m} onDone={() => setRound((r) => r + 1)} />}
      <h2>Timeline</h2>
      <TimelineList events={timelineEvents(m, deliveries.data?.items ?? [], audit.data?.items ?? [])} />
      {(deliveries.error || audit.error) && <Notice kind="error">{deliveries.error ?? audit.error}</Notice>}
      <details>
        <summary>Payload</summary>
        <pre>{JSON.stringify(m.payload, null, 2)}</pre>
      </details>
    </>
  );
}
