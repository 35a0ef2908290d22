import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MYSQL_SERVER, REDIS_URL, testName } from './helpers';
import { runRestoreDrill, type DrillReport } from './restore-drill';

const N = 40;
// Check-back well after the dump (asserted below), so the dump holds `confirmed-after` prepared, yet short
// enough that the restored Herald does not idle long before asking.
const CHECK_AFTER_MS = 6_000;
const server = new URL(MYSQL_SERVER);
const mysql = { host: server.hostname, port: Number(server.port || 3306), user: decodeURIComponent(server.username || 'root'), password: decodeURIComponent(server.password) || undefined };

/** The table in docs/operations.md "Restore drill"; a restore that loses or re-sends otherwise breaks it. */
describe('restore drill', () => {
  it('a dump taken under load, restored beside an empty Redis, keeps and delivers all it holds and only what came after is lost', { timeout: 180_000 }, async () => {
    // The budget (its waits, the dump and the restore) leaves 30 s of the test's timeout to remove its databases and keys.
    const report: DrillReport = await runRestoreDrill({ name: testName('drill'), perClass: N, checkAfterMs: CHECK_AFTER_MS, sweepIntervalMs: 500, reconcileIntervalMs: 1_000, mysql, redisUrl: REDIS_URL, budgetMs: 150_000 });
    const { classes } = report;

    // Otherwise check-back, not the drill, would have confirmed them before the dump.
    expect(report.confirmGapMs, 'check-back could have confirmed `confirmed-after` before the dump: raise CHECK_AFTER_MS').toBeLessThan(CHECK_AFTER_MS);
    expect(existsSync(report.dumpFile), 'the dump file is removed').toBe(false);

    // Delivered before the dump: delivered in it, still delivered, not sent again.
    expect(classes['delivered-before']).toMatchObject({ count: N, inDump: { delivered: N }, atStart: { delivered: N }, settled: { delivered: N }, deliveredAgain: 0 });

    // Prepared before, confirmed after: prepared in the dump; check-back (commit) confirms it and
    // it is delivered a second time, as at least once allows.
    expect(classes['confirmed-after']).toMatchObject({ count: N, inDump: { prepared: N }, settled: { delivered: N }, deliveredAgain: N });

    // Published before the dump, its delivery under way while the dump was taken: confirmed in
    // the dump, with a pending delivery that no queue of the restored Herald knows; the reconciler
    // finds it in MySQL once its lease has run out, and it is sent again.
    expect(classes['sending-at-dump']).toMatchObject({ count: N, inDump: { confirmed: N }, atStart: { confirmed: N }, settled: { delivered: N }, deliveredAgain: N });

    // Published or prepared after the dump: absent, 404 from the start, never sent again.
    for (const cls of ['published-after', 'prepared-after'] as const) {
      expect(classes[cls], cls).toMatchObject({ count: N, atStart: { '404': N }, settled: { '404': N }, deliveredAgain: 0 });
      expect(classes[cls].inDump, cls).toEqual({});
    }

    // The pairs during the dump: the dump really was taken mid-load (some in it, some not), and
    // each one ends delivered if the dump holds it, 404 if not.
    const load = classes.load;
    expect(report.loadPairs).toBe(load.count);
    expect(load.messages.filter((m) => m.inDump !== null).length, 'load pairs in the dump').toBeGreaterThan(0);
    expect(load.messages.filter((m) => m.inDump === null).length, 'load pairs after the snapshot').toBeGreaterThan(0);
    for (const m of load.messages) expect(m.settled, `${m.id} (${m.inDump ?? 'absent'} in the dump)`).toBe(m.inDump === null ? '404' : 'delivered');
    // Delivered in the dump: not sent again. Confirmed or prepared in it: sent by the restored Herald.
    for (const m of load.messages.filter((m) => m.inDump !== null)) expect(m.deliveriesAfter > 0, `${m.id} (${m.inDump} in the dump) sent again`).toBe(m.inDump !== 'delivered');

    // Nothing the dump holds is lost: every such message ends delivered, and its consumer got it.
    const held = Object.values(classes).flatMap((c) => c.messages.filter((m) => m.inDump !== null));
    expect(held.length).toBeGreaterThanOrEqual(2 * N);
    for (const m of held) {
      expect(m.settled, m.id).toBe('delivered');
      expect(m.deliveriesBefore + m.deliveriesAfter, m.id).toBeGreaterThan(0);
    }
  });
});
