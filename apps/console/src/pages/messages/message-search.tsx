import { useState } from 'preact/hooks';
import { useMessageLookup, useMessages, type MessageQuery } from '../../hooks/resources';
import { Notice } from '../../components/notice';
import { SearchForm, type Search } from './search-form';
import { MessageTable } from './message-table';

const MESSAGE_ID = /^[A-Za-z0-9_:-]{1,128}$/;

/**
 * Finds messages by id or key plus tenant, topic, status and creation time, newest first. A search text
 * matches either: the message with that id is listed first, then those with that key.
 */
export function MessageSearch() {
  const [search, setSearch] = useState<Search>({ text: '', filters: {} });
  const [cursor, setCursor] = useState<string | undefined>();
  const query: MessageQuery = { ...search.filters, ...(search.text ? { key: search.text } : {}), limit: 50, cursor };
  const list = useMessages(query);
  const lookup = useMessageLookup(search.text && MESSAGE_ID.test(search.text) && !cursor ? search.text : undefined, search.filters.tenant);
  const idMatch = lookup.data;
  const items = [...(idMatch ? [idMatch] : []), ...(list.data?.items ?? []).filter((m) => m.id !== idMatch?.id || m.tenant !== idMatch.tenant)];
  return (
    <>
      <h1>Messages</h1>
      <SearchForm
        onSearch={(s) => {
          setSearch(s);
          setCursor(undefined);
        }}
      />
      {list.error ? <Notice kind="error">{list.error}</Notice> : list.loading && !list.data ? <p>Loading…</p> : <MessageTable items={items} />}
      {list.data?.nextCursor && (
        <button type="button" class="quiet" onClick={() => setCursor(list.data?.nextCursor ?? undefined)}>
          Next page
        </button>
      )}
    </>
  );
}
