/**
 * List cursors are opaque to clients: base64url of a versioned position. Clients must not build
 * them; a cursor that does not decode is a 400, not a silent restart from the top.
 */
export interface ListPosition {
  /** The insertion sequence of the last item returned; the next page starts below it. */
  seq: bigint;
}

const PREFIX = 'v1:';

export function encodeCursor(position: ListPosition): string {
  return Buffer.from(`${PREFIX}${position.seq.toString()}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): ListPosition | undefined {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(cursor)) return undefined;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith(PREFIX)) return undefined;
  const digits = text.slice(PREFIX.length);
  if (!/^[1-9][0-9]{0,19}$/.test(digits)) return undefined;
  const seq = BigInt(digits);
  return seq <= 18446744073709551615n ? { seq } : undefined;
}
