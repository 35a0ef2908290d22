import { randomBytes } from 'node:crypto';
import { databasesStartingWith, keyPrefixes } from './leftovers';

const MYSQL_SERVER = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const REDIS_URL = process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * Gives each vitest run an id that its test databases and Redis prefixes carry
 * (herald_t_<run>_…, herald_ex_<run>_…), then fails the run if any of them is left behind. Other runs on the same
 * servers have other ids, so their keys and databases are neither counted nor touched.
 */
export default function setup() {
  const run = (process.env.HERALD_TEST_RUN ??= randomBytes(3).toString('hex'));
  // Server tests' names, and the examples' (examples/shared/herald.process.ts).
  const starts = [`herald_t_${run}_`, `herald_ex_${run}_`];
  return async () => {
    const [keys, databases] = await Promise.all([
      Promise.all(starts.map((s) => keyPrefixes(REDIS_URL, s))).then((found) => found.flatMap((m) => [...m])).catch(() => undefined),
      Promise.all(starts.map((s) => databasesStartingWith(MYSQL_SERVER, s))).then((found) => found.flat()).catch(() => undefined),
    ]);
    // A run of pure unit tests on a machine without the servers has nothing to check.
    if (!keys || !databases) return;
    const left = [...keys.map(([prefix, n]) => `Redis prefix ${prefix} (${n} keys)`), ...databases.map((d) => `database ${d}`)];
    if (left.length) {
      console.error(`\nThis run left behind what its tests created (each test must remove its own):\n  ${left.join('\n  ')}\n`);
      process.exitCode = 1;
    }
  };
}
