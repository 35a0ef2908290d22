import type { ComponentChildren } from 'preact';

/** A status line read out by screen readers when it changes. */
export function Notice(props: { kind?: 'error' | 'ok' | 'info'; children: ComponentChildren }) {
  return (
    <p role={props.kind === 'error' ? 'alert' : 'status'} class={props.kind ?? 'info'}>
      {props.children}
    </p>
  );
}
