import { useEffect, useState } from 'preact/hooks';

// Hash routes (#/messages/…): the server serves one index.html, and a reload keeps the page.
export function useHashPath(): string {
  const read = () => decodeURIComponent(location.hash.replace(/^#/, '')) || '/';
  const [path, setPath] = useState(read);
  useEffect(() => {
    const changed = () => setPath(read());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return path;
}

export const messageHref = (id: string) => `#/messages/${encodeURIComponent(id)}`;
