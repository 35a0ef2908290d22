/**
 * Whether `error`, or any error in its `cause` chain, carries one of `codes`. drizzle wraps
 * mysql2's errors, so the driver's code (ER_DUP_ENTRY, ECONNREFUSED, …) is usually a cause.
 */
export function hasErrorCode(error: unknown, codes: ReadonlySet<string> | readonly string[]): boolean {
  const wanted = codes instanceof Set ? codes : new Set(codes as readonly string[]);
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && wanted.has(code)) return true;
  }
  return false;
}
