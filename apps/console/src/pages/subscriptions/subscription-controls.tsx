import { useState } from 'preact/hooks';
import { api, problemText, type Subscription } from '../../api/client';
import { Notice } from '../../components/notice';

/** Enable or disable, and rotate a webhook's signing secret (the new one is shown once, here). */
export function SubscriptionControls(props: { subscription: Subscription; onDone: () => void }) {
  const s = props.subscription;
  const [result, setResult] = useState<{ kind: 'ok' | 'error'; text: string }>();
  const path = { path: { id: s.id } };
  const toggle = async () => {
    const { data, error, response } = await api.PATCH('/v1/subscriptions/{id}', { params: path, body: { enabled: !s.enabled } });
    setResult(data ? { kind: 'ok', text: `${s.name} ${data.enabled ? 'enabled' : 'disabled'}.` } : { kind: 'error', text: problemText(error, response) });
    props.onDone();
  };
  const rotate = async () => {
    const { data, error, response } = await api.POST('/v1/subscriptions/{id}/rotate-secret', { params: path, body: {} });
    setResult(data ? { kind: 'ok', text: `New secret (shown once): ${data.secret}. The old one also signs until ${data.previousSecretExpiresAt}.` } : { kind: 'error', text: problemText(error, response) });
  };
  return (
    <div class="buttons">
      <button type="button" onClick={toggle}>
        {s.enabled ? 'Disable' : 'Enable'}
      </button>
      {s.target.type === 'webhook' && (
        <button type="button" onClick={rotate}>
          Rotate secret
        </button>
      )}
      {result && <Notice kind={result.kind}>{result.text}</Notice>}
    </div>
  );
}
