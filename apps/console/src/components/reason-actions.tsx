import { useState } from 'preact/hooks';
import { Notice } from './notice';

export interface ReasonAction {
  label: string;
  /** Resolves to the outcome shown under the buttons, or '' when the caller shows it elsewhere. */
  run: (reason: string) => Promise<string>;
}

/**
 * Buttons for operator actions that need a reason: one Reason field shared by them, required
 * before any runs (it is kept in Herald's audit log with the action).
 */
export function ReasonActions(props: { title: string; actions: ReasonAction[]; children?: preact.ComponentChildren }) {
  const [reason, setReason] = useState('');
  const [result, setResult] = useState<{ kind: 'ok' | 'error'; text: string }>();
  const [busy, setBusy] = useState(false);
  const run = async (action: ReasonAction) => {
    if (!reason.trim()) return setResult({ kind: 'error', text: `A reason is required to ${action.label.toLowerCase()}.` });
    setBusy(true);
    try {
      const text = await action.run(reason.trim());
      setResult(text ? { kind: 'ok', text } : undefined);
      setReason('');
    } catch (error) {
      setResult({ kind: 'error', text: error instanceof Error ? error.message : String(error) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="actions" aria-label={props.title}>
      <h3>{props.title}</h3>
      {props.children}
      <label>
        Reason
        <input type="text" value={reason} maxLength={500} required onInput={(e) => setReason(e.currentTarget.value)} />
      </label>
      <div class="buttons">
        {props.actions.map((a) => (
          <button key={a.label} type="button" disabled={busy} onClick={() => run(a)}>
            {a.label}
          </button>
        ))}
      </div>
      {result && <Notice kind={result.kind}>{result.text}</Notice>}
    </section>
  );
}
