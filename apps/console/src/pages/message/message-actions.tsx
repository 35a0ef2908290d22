import { useState } from 'preact/hooks';
import { api, problemText, type Message } from '../../api/client';
import { Notice } from '../../components/notice';
import { ReasonActions, type ReasonAction } from '../../components/reason-actions';

const COMMITTED = ['confirmed', 'delivered', 'failed'];

/** A prepared message is stale once its first check-back was due: its producer had time to decide. */
export const isStale = (m: Message, now = Date.now()) => m.status === 'prepared' && now - Date.parse(m.createdAt) >= m.checkAfterMs;

async function call(answer: Promise<{ error?: unknown; response: Response }>, done: string): Promise<string> {
  const { error, response } = await answer;
  if (!response.ok) throw new Error(problemText(error, response));
  return done;
}

/** Confirm, cancel or redeliver, each with a reason for the audit log. Admins only. */
export function MessageActions(props: { message: Message; onDone: () => void }) {
  const m = props.message;
  // The loaded message's own tenant: an id another tenant also holds must not be acted on by id alone.
  const path = { path: { id: m.id }, query: { tenant: m.tenant } };
  // What the last action did, kept here: a cancel leaves no action to offer, and the outcome must
  // not vanish with the buttons when the reloaded message says so.
  const [last, setLast] = useState<string>();
  const after = (p: Promise<string>) =>
    p.finally(props.onDone).then((text) => {
      setLast(text);
      return text;
    });
  const actions: ReasonAction[] = [];
  if (m.status === 'unresolved' || isStale(m)) {
    actions.push({ label: 'Confirm', run: (reason) => after(call(api.POST('/v1/messages/{id}/confirm', { params: path, body: { reason } }), `Message ${m.id} confirmed.`)) });
    actions.push({ label: 'Cancel', run: (reason) => after(call(api.POST('/v1/messages/{id}/cancel', { params: path, body: { reason } }), `Message ${m.id} cancelled.`)) });
  }
  if (COMMITTED.includes(m.status)) {
    actions.push({
      label: 'Redeliver',
      run: async (reason) => {
        const { data, error, response } = await api.POST('/v1/messages/{id}/redeliver', { params: path, body: { reason } });
        props.onDone();
        if (!data) throw new Error(problemText(error, response));
        return `${data.requeued} ${data.requeued === 1 ? 'delivery' : 'deliveries'} requeued.`;
      },
    });
  }
  if (actions.length === 0) {
    return (
      <>
        {last && <Notice kind="ok">{last}</Notice>}
        <p class="hint">{m.status === 'prepared' ? 'Prepared recently: its producer may still confirm or cancel it.' : `No action applies to a ${m.status} message.`}</p>
      </>
    );
  }
  return <ReasonActions title="Actions" actions={actions} />;
}
