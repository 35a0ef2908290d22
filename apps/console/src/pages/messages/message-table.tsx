import type { Message } from '../../api/client';
import { Time } from '../../components/time';
import { messageHref } from '../../router';

export function MessageTable(props: { items: Message[] }) {
  if (props.items.length === 0) return <p role="status">No messages match.</p>;
  return (
    <table>
      <caption class="sr-only">Messages, newest first</caption>
      <thead>
        <tr>
          <th scope="col">Id</th>
          <th scope="col">Tenant</th>
          <th scope="col">Topic</th>
          <th scope="col">Key</th>
          <th scope="col">Status</th>
          <th scope="col">Created</th>
        </tr>
      </thead>
      <tbody>
        {props.items.map((m) => (
          <tr key={`${m.tenant}/${m.id}`}>
            <td>
              <a href={messageHref(m.id, m.tenant)}>{m.id}</a>
            </td>
            <td>{m.tenant}</td>
            <td>{m.topic}</td>
            <td>{m.key ?? '—'}</td>
            <td>
              <span class={`badge ${m.status}`}>{m.status}</span>
            </td>
            <td>
              <Time at={m.createdAt} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
