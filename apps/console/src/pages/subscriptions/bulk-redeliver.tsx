import { useState } from 'preact/hooks';
import { api, problemText } from '../../api/client';
import { Notice } from '../../components/notice';
import { ReasonActions } from '../../components/reason-actions';

const toInstant = (local: string) => (local ? new Date(local).toISOString() : undefined);

/** Redeliver a subscription's dead deliveries by the time they died, after seeing how many. */
export function BulkRedeliver(props: { subscriptionId: string; onDone: () => void }) {
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const [count, setCount] = useState<{ dead: number; range: string } | { error: string }>();
  // Kept here: the reason form goes away with the count it acted on.
  const [done, setDone] = useState<string>();
  const range = { since: toInstant(since), until: toInstant(until) };
  const key = JSON.stringify(range);
  const countNow = async () => {
    const { data, error, response } = await api.GET('/v1/subscriptions/{id}/dead-deliveries/count', { params: { path: { id: props.subscriptionId }, query: range } });
    setDone(undefined);
    setCount(data ? { dead: data.dead, range: key } : { error: problemText(error, response) });
  };
  const counted = count && 'dead' in count && count.range === key ? count : undefined;
  return (
    <details class="bulk">
      <summary>Redeliver dead deliveries</summary>
      <label>
        Died from
        <input type="datetime-local" value={since} onInput={(e) => setSince(e.currentTarget.value)} />
      </label>
      <label>
        Died before
        <input type="datetime-local" value={until} onInput={(e) => setUntil(e.currentTarget.value)} />
      </label>
      <button type="button" onClick={countNow}>
        Count dead deliveries
      </button>
      {count && 'error' in count && <Notice kind="error">{count.error}</Notice>}
      {counted && <Notice>{`${counted.dead} dead ${counted.dead === 1 ? 'delivery' : 'deliveries'} in this range.`}</Notice>}
      {counted && counted.dead > 0 && (
        <ReasonActions
          title="Redeliver these"
          actions={[
            {
              label: 'Redeliver',
              run: async (reason) => {
                const { data, error, response } = await api.POST('/v1/subscriptions/{id}/redeliver', { params: { path: { id: props.subscriptionId } }, body: { ...range, reason } });
                if (!data) throw new Error(problemText(error, response));
                const text = `${data.requeued} ${data.requeued === 1 ? 'delivery' : 'deliveries'} requeued.`;
                setCount(undefined);
                setDone(text);
                props.onDone();
                return text;
              },
            },
          ]}
        />
      )}
      {done && <Notice kind="ok">{done}</Notice>}
    </details>
  );
}
