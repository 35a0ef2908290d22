/**
 * Backup and restore drill: Herald under load on one database, `mysqldump --single-transaction`
 * taken mid-load, the dump restored into a new database, Herald started on it. Prints what each
 * class of message became. `npx tsx apps/server/scripts/restore-drill.ts`; it creates its own
 * databases and queue prefixes and removes them afterwards (the dump file is kept in /tmp).
 * The drill itself is `runRestoreDrill`, which restore-drill.faults.test.ts checks in CI.
 */
import { runRestoreDrill } from '../test/restore-drill';

const log = (text: string) => console.log(`[drill ${new Date().toISOString().slice(11, 19)}] ${text}`);

const report = await runRestoreDrill({ keepDump: true, log, redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
log(`confirmed-after: ${report.confirmGapMs} ms from the first prepare to the dump (check-back after ${report.checkAfterMs} ms)`);
