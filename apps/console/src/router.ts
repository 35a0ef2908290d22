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

/**
 * A message's page. With its tenant, so an id two tenants hold opens the one that was clicked
 * (an admin's or viewer's lookup of such an id without a tenant is refused 409).
 */
export const messageHref = (id: string, tenant?: string) => `#/messages/${encodeURIComponent(id)}${tenant ? `?tenant=${encodeURIComponent(tenant)}` : ''}`;

/** The id and tenant of a message page's path (`/messages/<id>` or `/messages/<id>?tenant=<tenant>`). */
export function messagePage(path: string): { id: string; tenant?: string } | undefined {
  // Neither an id nor a tenant may contain `?`, so the split is unambiguous.
  const match = /^\/messages\/([^?]+)(?:\?tenant=([^&]+))?$/.exec(path);
  return match ? { id: match[1]!, ...(match[2] && { tenant: match[2] }) } : undefined;
}
