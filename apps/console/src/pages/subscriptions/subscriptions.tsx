import { useState } from 'preact/hooks';
import type { Subscription } from '../../api/client';
import { useSubscriptionHealth, useSubscriptions } from '../../hooks/resources';
import { Notice } from '../../components/notice';
import { Time } from '../../components/time';
import { BlockedKeys } from './blocked-keys';
import { BulkRedeliver } from './bulk-redeliver';
import { SubscriptionControls } from './subscription-controls';

type Health = { delivered: number; dead: number; failureRate: number; lastError: string | null; lastDeadAt: string | null };

const target = (s: Subscription) => (s.target.type === 'webhook' ? s.target.url : `rabbitmq ${s.target.exchange || '(default exchange)'}`);

function SubscriptionCard(props: { s: Subscription; health: Health | undefined; canAct: boolean; round: number; onDone: () => void }) {
  const { s, health } = props;
  const headingId = `sub-${s.id}`;
  return (
    <section class="card" aria-labelledby={headingId}>
      <h2 id={headingId}>{s.name}</h2>
      <dl class="fields">
        <dt>Topic</dt>
        <dd>{s.topic}</dd>
        <dt>Target</dt>
        <dd>{target(s)}</dd>
        <dt>Ordering</dt>
        <dd>{s.ordering === 'key' ? 'per key: one message of a key at a time, in commit order' : 'none'}</dd>
        <dt>State</dt>
        <dd>{s.enabled ? 'enabled' : `disabled${s.disabledReason ? `: ${s.disabledReason}` : ''}`}</dd>
        <dt>Last hour</dt>
        <dd>{health ? `${health.delivered} delivered, ${health.dead} dead, failure rate ${(health.failureRate * 100).toFixed(1)} %` : '—'}</dd>
        <dt>Last error</dt>
        <dd>
          {health?.lastError ? (
            <>
              {health.lastError} (<Time at={health.lastDeadAt} />)
            </>
          ) : (
            'none'
          )}
        </dd>
      </dl>
      {props.canAct && <SubscriptionControls subscription={s} onDone={props.onDone} />}
      {s.ordering === 'key' && <BlockedKeys subscriptionId={s.id} canAct={props.canAct} round={props.round} onDone={props.onDone} />}
      {props.canAct && <BulkRedeliver subscriptionId={s.id} onDone={props.onDone} />}
    </section>
  );
}

/** Every subscription with its health over the last hour; admins can act on each. */
export function Subscriptions(props: { canAct: boolean }) {
  const [round, setRound] = useState(0);
  const list = useSubscriptions(round);
  const health = useSubscriptionHealth(round);
  const byId = new Map((health.data?.items ?? []).map((h) => [h.subscriptionId, h]));
  return (
    <>
      <h1>Subscriptions</h1>
      {list.error && <Notice kind="error">{list.error}</Notice>}
      {list.data?.items.length === 0 && <p>No subscriptions yet.</p>}
      {list.data?.items.map((s) => <SubscriptionCard key={s.id} s={s} health={byId.get(s.id)} canAct={props.canAct} round={round} onDone={() => setRound((r) => r + 1)} />)}
    </>
  );
}
