import { useState } from 'preact/hooks';
import { api, problemText, type Schema } from '../../api/client';
import { useBlockedKeys } from '../../hooks/resources';
import { Notice } from '../../components/notice';
import { ReasonActions } from '../../components/reason-actions';
import { Time } from '../../components/time';
import { messageHref } from '../../router';

type BlockedKey = Schema<'/v1/subscriptions/{id}/blocked-keys', 'get'>['items'][number];

/** Skip the dead delivery at the head of one key, with a reason for the audit log. */
function SkipKey(props: { subscriptionId: string; blocked: BlockedKey; onSkipped: (text: string) => void }) {
  const { tenant, key } = props.blocked;
  return (
    <ReasonActions
      title={`Skip key ${key}`}
      actions={[
        {
          label: 'Skip',
          run: async (reason) => {
            const { data, error, response } = await api.POST('/v1/subscriptions/{id}/blocked-keys/skip', { params: { path: { id: props.subscriptionId } }, body: { tenant, key, reason } });
            if (!data) throw new Error(problemText(error, response));
            const text = `Skipped message ${data.messageId} of key ${key}; ${data.nextDeliveryId === null ? 'nothing else of the key was waiting.' : 'the next message of the key is being sent.'}`;
            // Shown by the section: this row goes away with the refresh.
            props.onSkipped(text);
            return '';
          },
        },
      ]}
    />
  );
}

/**
 * The keys an ordered subscription is held up on: a dead delivery blocks later messages of its
 * key until it is redelivered and delivered, or an admin skips it.
 */
export function BlockedKeys(props: { subscriptionId: string; canAct: boolean; round: number; onDone: () => void }) {
  const [cursors, setCursors] = useState<string[]>([]);
  const [skipped, setSkipped] = useState<string>();
  const blocked = useBlockedKeys(props.subscriptionId, cursors.at(-1), props.round);
  const headingId = `blocked-${props.subscriptionId}`;
  const items = blocked.data?.items ?? [];
  const onSkipped = (text: string) => {
    setSkipped(text);
    props.onDone();
  };
  return (
    <section class="blocked" aria-labelledby={headingId}>
      <h3 id={headingId}>Blocked keys</h3>
      {blocked.error && <Notice kind="error">{blocked.error}</Notice>}
      {blocked.data && items.length === 0 && <p class="hint">No key is blocked.</p>}
      {items.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Tenant</th>
              <th scope="col">Blocking message</th>
              <th scope="col">Dead at</th>
              <th scope="col">Last error</th>
              <th scope="col">Waiting</th>
              {props.canAct && <th scope="col">Action</th>}
            </tr>
          </thead>
          <tbody>
            {items.map((b) => (
              <tr key={b.deliveryId}>
                <td>{b.key}</td>
                <td>{b.tenant}</td>
                <td>
                  <a href={messageHref(b.messageId, b.tenant)}>{b.messageId}</a>
                </td>
                <td>
                  <Time at={b.deadAt} />
                </td>
                {/* A webhook's error already names its status code. */}
                <td>{b.lastError ?? (b.lastStatusCode === null ? '—' : `HTTP ${b.lastStatusCode}`)}</td>
                <td>{`${b.waiting} waiting`}</td>
                {props.canAct && (
                  <td>
                    <SkipKey subscriptionId={props.subscriptionId} blocked={b} onSkipped={onSkipped} />
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {skipped && <Notice kind="ok">{skipped}</Notice>}
      <div class="buttons">
        {cursors.length > 0 && (
          <button type="button" class="quiet" onClick={() => setCursors((c) => c.slice(0, -1))}>
            Previous blocked keys
          </button>
        )}
        {blocked.data?.nextCursor && (
          <button type="button" class="quiet" onClick={() => setCursors((c) => [...c, blocked.data!.nextCursor!])}>
            More blocked keys
          </button>
        )}
      </div>
    </section>
  );
}
