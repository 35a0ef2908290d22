import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { databaseName, ensureDatabase, type DatabaseOptions } from './connection';

export interface MigrationResult {
  applied: string[];
  alreadyApplied: string[];
}

const MIGRATION_FILE = /^\d{4}_[a-z0-9_]+\.sql$/;
const LOCK_TIMEOUT_S = 120;

/**
 * The committed SQL migrations: beside this file's lib in the source tree, or copied beside
 * the bundled server (`dist/apps/server/migrations`) by its build.
 */
export function defaultMigrationsDir(): string {
  const candidates = [new URL('../migrations/', import.meta.url), new URL('./migrations/', import.meta.url)];
  const found = candidates.map((u) => fileURLToPath(u)).find((dir) => existsSync(dir));
  if (!found) throw new Error('Herald migrations folder not found next to the db lib or the server bundle');
  return found;
}

/**
 * Creates the database if missing and applies pending migrations in file-name order.
 *
 * Runs under `GET_LOCK` on a dedicated connection, so replicas starting together apply each
 * migration once: the others wait, then find nothing left to do. An applied migration whose
 * file changed since is an error, not a silent skip.
 */
export async function migrate(options: DatabaseOptions, dir = defaultMigrationsDir()): Promise<MigrationResult> {
  await ensureDatabase(options);
  const lockName = `herald:migrate:${databaseName(options.url)}`;
  const connection = await createConnection({ uri: options.url, multipleStatements: true, connectTimeout: options.connectTimeoutMs ?? 5_000 });
  try {
    const [lock] = await connection.query<RowDataPacket[]>('SELECT GET_LOCK(?, ?) AS got', [lockName, LOCK_TIMEOUT_S]);
    if (lock?.[0]?.got !== 1) throw new Error(`could not take the migration lock "${lockName}" within ${LOCK_TIMEOUT_S}s`);
    try {
      await connection.query(`CREATE TABLE IF NOT EXISTS herald_migrations (
        name VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
        checksum CHAR(64) CHARACTER SET ascii NOT NULL,
        applied_at DATETIME(3) NOT NULL
      ) ENGINE = InnoDB`);
      const [rows] = await connection.query<RowDataPacket[]>('SELECT name, checksum FROM herald_migrations');
      const done = new Map(rows.map((r) => [String(r.name), String(r.checksum)]));
      const files = (await readdir(dir)).filter((f) => MIGRATION_FILE.test(f)).sort();
      const result: MigrationResult = { applied: [], alreadyApplied: [] };
      for (const file of files) {
        const sql = await readFile(`${dir}/${file}`, 'utf8');
        const checksum = createHash('sha256').update(sql).digest('hex');
        const previous = done.get(file);
        if (previous !== undefined) {
          if (previous !== checksum) throw new Error(`migration ${file} was changed after it was applied; add a new migration instead`);
          result.alreadyApplied.push(file);
          continue;
        }
        await connection.query(sql);
        await connection.query('INSERT INTO herald_migrations (name, checksum, applied_at) VALUES (?, ?, UTC_TIMESTAMP(3))', [file, checksum]);
        result.applied.push(file);
      }
      return result;
    } finally {
      await connection.query('SELECT RELEASE_LOCK(?)', [lockName]);
    }
  } finally {
    await connection.end();
  }
}
