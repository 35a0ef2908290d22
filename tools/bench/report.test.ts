import { describe, expect, it } from 'vitest';
import { naiveTable, type BenchRow } from './report';
import { summarize } from './stats';

const latency = summarize([1, 2, 3]);
const row = (databaseCpuMsPerOp: number | null | undefined, naiveDatabase: number | null | undefined): BenchRow => ({
  scenario: 'prepare+confirm → webhook',
  concurrency: 1,
  heraldPerSec: 250,
  deliveredPerSec: 250,
  errors: 0,
  undelivered: 0,
  latency,
  requestLatency: latency,
  prepareLatency: latency,
  confirmLatency: latency,
  baseline: 'MySQL INSERT+UPDATE',
  baselinePerSec: 1000,
  baselineLatency: latency,
  ratio: 0.25,
  rssMaxMiB: 190,
  heraldCpuMsPerOp: 2,
  databaseCpuMsPerOp,
  naive: { perSec: 500, deliveredPerSec: 500, errors: 0, undelivered: 0, latency, requestLatency: latency, prepareLatency: latency, confirmLatency: latency, cpuMsPerOp: 0.8, databaseCpuMsPerOp: naiveDatabase, ratio: 0.5, cpuRatio: 2.5 },
});

describe('naiveTable', () => {
  it("puts the MySQL server's CPU per operation of each side in a column of its own when it was measured", () => {
    const table = naiveTable([row(1.97, 0.81)]);
    expect(table.split('\n')[0]).toContain('MySQL server CPU ms/op Herald / naive');
    expect(table.split('\n')[2]).toMatch(/\| 1\.97 \/ 0\.81 \|$/);
  });

  it('leaves the column out when the server runs on another machine (nothing measured)', () => {
    const table = naiveTable([row(null, null)]);
    expect(table).not.toContain('MySQL server CPU');
  });
});
