import { useState } from 'preact/hooks';
import { useAudit } from '../../hooks/resources';
import { Notice } from '../../components/notice';
import { Time } from '../../components/time';
import { messageHref } from '../../router';

/** Every operator action, newest first. */
export function AuditLog() {
  const [cursors, setCursors] = useState<string[]>([]);
  const audit = useAudit({ limit: 50, cursor: cursors.at(-1) });
  return (
    <>
      <h1>Audit log</h1>
      {audit.error && <Notice kind="error">{audit.error}</Notice>}
      <table>
        <caption class="sr-only">Operator actions, newest first</caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Who</th>
            <th scope="col">Action</th>
            <th scope="col">Target</th>
            <th scope="col">Reason</th>
            <th scope="col">Outcome</th>
          </tr>
        </thead>
        <tbody>
          {audit.data?.items.map((e) => (
            <tr key={e.id}>
              <td>
                <Time at={e.at} />
              </td>
              <td>{e.actor}</td>
              <td>{e.action}</td>
              <td>{e.targetType === 'message' ? <a href={messageHref(e.targetId)}>{e.targetId}</a> : e.targetId}</td>
              <td>{e.reason ?? '—'}</td>
              <td>{e.outcome}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="buttons">
        {cursors.length > 0 && (
          <button type="button" class="quiet" onClick={() => setCursors((c) => c.slice(0, -1))}>
            Previous page
          </button>
        )}
        {audit.data?.nextCursor && (
          <button type="button" class="quiet" onClick={() => setCursors((c) => [...c, audit.data!.nextCursor!])}>
            Next page
          </button>
        )}
      </div>
    </>
  );
}
