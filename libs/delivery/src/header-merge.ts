/**
 * Merges header maps; a later map wins over an earlier one whatever the letter case, since HTTP
 * names are case-insensitive and a receiver keeps the first of repeated `Authorization` or
 * `User-Agent` lines. Names come out lower case, once each.
 */
export function mergeHeaders(...layers: ReadonlyArray<Readonly<Record<string, string>> | undefined>): Record<string, string> {
  const merged = new Map<string, string>();
  for (const layer of layers) {
    if (!layer) continue;
    for (const [name, value] of Object.entries(layer)) merged.set(name.toLowerCase(), value);
  }
  return Object.fromEntries(merged);
}
