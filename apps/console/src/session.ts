// The token lives in sessionStorage only: gone when the tab closes, never in a URL or a cookie
// (so no other site's request can carry it).
const KEY = 'herald.token';

export const session = {
  token: (): string | null => sessionStorage.getItem(KEY),
  signIn: (token: string) => sessionStorage.setItem(KEY, token),
  signOut: () => sessionStorage.removeItem(KEY),
};
