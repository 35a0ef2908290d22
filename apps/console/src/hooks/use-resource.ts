import { useCallback, useEffect, useState } from 'preact/hooks';
import { problemText } from '../api/client';

export interface Resource<T> {
  data: T | undefined;
  /** Herald's error message when the last load failed. */
  error: string | undefined;
  /** The HTTP status of the last answer (0 before the first, or when the request failed). */
  status: number;
  loading: boolean;
  reload: () => void;
}

type Answer<T> = { data?: T; error?: unknown; response: Response };

/** Loads `load()` whenever `deps` change; the base of the one-hook-per-resource hooks. */
export function useResource<T>(load: () => Promise<Answer<T>>, deps: readonly unknown[]): Resource<T> {
  const [state, setState] = useState<Omit<Resource<T>, 'reload'>>({ data: undefined, error: undefined, status: 0, loading: true });
  const [round, setRound] = useState(0);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  useEffect(() => {
    let current = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      ({ data, error, response }) => {
        if (!current) return;
        if (data !== undefined && response.ok) setState({ data, error: undefined, status: response.status, loading: false });
        else setState({ data: undefined, error: problemText(error, response), status: response.status, loading: false });
      },
      (failure: unknown) => current && setState({ data: undefined, error: `Herald could not be reached: ${String(failure)}`, status: 0, loading: false }),
    );
    return () => {
      current = false;
    };
  }, [...deps, round]);
  return { ...state, reload };
}
