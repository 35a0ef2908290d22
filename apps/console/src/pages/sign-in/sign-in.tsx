import { useState } from 'preact/hooks';
import { Notice } from '../../components/notice';

/** Paste a token from HERALD_API_KEYS; it is kept in this tab's sessionStorage only. */
export function SignIn(props: { refused: string | undefined; onSignIn: (token: string) => void }) {
  const [token, setToken] = useState('');
  return (
    <main class="sign-in">
      <h1>Herald console</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (token.trim()) props.onSignIn(token.trim());
        }}
      >
        <label>
          Token
          <input type="password" autoComplete="off" value={token} required onInput={(e) => setToken(e.currentTarget.value)} />
        </label>
        <button type="submit">Sign in</button>
      </form>
      {props.refused && <Notice kind="error">Herald refused that token: {props.refused}</Notice>}
      <p class="hint">The token stays in this browser tab only and is sent to this Herald alone.</p>
    </main>
  );
}
