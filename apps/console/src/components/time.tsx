/** A timestamp shown in UTC to the second, with the exact value in the element. */
export function Time(props: { at: string | null | undefined }) {
  if (!props.at) return <span>—</span>;
  return <time dateTime={props.at}>{props.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time>;
}
