const LINKS = [
  { href: '#/', path: '/', label: 'Overview' },
  { href: '#/messages', path: '/messages', label: 'Messages' },
  { href: '#/subscriptions', path: '/subscriptions', label: 'Subscriptions' },
  { href: '#/audit', path: '/audit', label: 'Audit log' },
];

export function Nav(props: { path: string; caller: { name: string; role: string }; onSignOut: () => void }) {
  const current = (p: string) => (p === '/' ? props.path === '/' : props.path.startsWith(p));
  return (
    <header>
      <strong class="brand">Herald</strong>
      <nav aria-label="Pages">
        {LINKS.map((l) => (
          <a key={l.href} href={l.href} aria-current={current(l.path) ? 'page' : undefined}>
            {l.label}
          </a>
        ))}
      </nav>
      <span class="who">
        {props.caller.name} ({props.caller.role})
      </span>
      <button type="button" class="quiet" onClick={props.onSignOut}>
        Sign out
      </button>
    </header>
  );
}
