import { useState } from 'preact/hooks';
import type { MessageQuery } from '../../hooks/resources';

const STATUSES = ['prepared', 'confirmed', 'delivered', 'cancelled', 'unresolved', 'failed'] as const;

export interface Search {
  /** A message id or a business key. */
  text: string;
  filters: MessageQuery;
}

/** datetime-local gives local wall time without a zone; Herald wants UTC instants. */
const toInstant = (local: string) => (local ? new Date(local).toISOString() : undefined);

export function SearchForm(props: { onSearch: (search: Search) => void }) {
  const [text, setText] = useState('');
  const [tenant, setTenant] = useState('');
  const [topic, setTopic] = useState('');
  const [status, setStatus] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  return (
    <form
      class="search"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        props.onSearch({
          text: text.trim(),
          filters: {
            tenant: tenant.trim() || undefined,
            topic: topic.trim() || undefined,
            status: (status || undefined) as MessageQuery['status'],
            createdAfter: toInstant(from),
            createdBefore: toInstant(to),
          },
        });
      }}
    >
      <label>
        Search messages
        <input type="search" placeholder="message id or key" value={text} onInput={(e) => setText(e.currentTarget.value)} />
      </label>
      <label>
        Tenant
        <input type="text" value={tenant} onInput={(e) => setTenant(e.currentTarget.value)} />
      </label>
      <label>
        Topic
        <input type="text" value={topic} onInput={(e) => setTopic(e.currentTarget.value)} />
      </label>
      <label>
        Status
        <select value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
          <option value="">any</option>
          {STATUSES.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
      </label>
      <label>
        Created from
        <input type="datetime-local" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
      </label>
      <label>
        Created before
        <input type="datetime-local" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
      </label>
      <button type="submit">Search</button>
    </form>
  );
}
