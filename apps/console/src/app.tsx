import { useState } from 'preact/hooks';
import { session } from './session';
import { useCaller } from './hooks/resources';
import { messagePage, useHashPath } from './router';
import { Nav } from './components/nav';
import { SignIn } from './pages/sign-in/sign-in';
import { Overview } from './pages/overview/overview';
import { MessageSearch } from './pages/messages/message-search';
import { MessageTimeline } from './pages/message/message-timeline';
import { Subscriptions } from './pages/subscriptions/subscriptions';
import { AuditLog } from './pages/audit/audit-log';

export function App() {
  const [token, setToken] = useState(session.token());
  const caller = useCaller(token);
  const path = useHashPath();
  const signOut = () => {
    session.signOut();
    setToken(null);
  };
  if (!token || caller.status === 401) {
    return <SignIn refused={token ? caller.error : undefined} onSignIn={(t) => (session.signIn(t), setToken(t))} />;
  }
  if (!caller.data) return <main aria-busy="true">{caller.error ?? 'Signing in…'}</main>;
  // Viewers (and producers) are shown no actions; Herald refuses their writes anyway.
  const canAct = caller.data.role === 'admin';
  const message = messagePage(path);
  return (
    <>
      <Nav path={path} caller={caller.data} onSignOut={signOut} />
      <main>
        {message ? (
          <MessageTimeline id={message.id} tenant={message.tenant} canAct={canAct} />
        ) : path === '/messages' ? (
          <MessageSearch />
        ) : path === '/subscriptions' ? (
          <Subscriptions canAct={canAct} />
        ) : path === '/audit' ? (
          <AuditLog />
        ) : (
          <Overview />
        )}
      </main>
    </>
  );
}
