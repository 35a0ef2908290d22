import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Errors, Stats } from '@herald/contract';
import { MESSAGE_STATUSES, type MessageStatus } from '@herald/domain';
import { PURGER_NAME, type Retention } from '@herald/queues';
import type { Access } from '../plugins/auth';
import { purgeLagMs } from '../plugins/purge';

/** Who may read the figures: admins, and viewers (who may make every GET). */
const STATS_ACCESS: Access = 'admin';

/** Each count reads at most this many index entries, so the answer costs the same on any table size. */
export const STATS_COUNT_CAP = 100_000;

export const statsRoutes: FastifyPluginAsyncTypebox<{ retention: Retention }> = async (app, { retention }) => {
  app.get('/v1/stats', {
    config: { access: STATS_ACCESS },
    schema: {
      operationId: 'getStats',
      summary: 'Counts by state, backlog, oldest prepared message, table sizes, purge progress',
      description:
        `Cheap on any table size: counts stop at \`countsCappedAt\` (${STATS_COUNT_CAP}), table sizes are InnoDB’s estimates from information_schema (\`tableSizesAreEstimates\`), ` +
        'the oldest prepared message and the purge lag are index probes. Messages are kept for their retention after they are delivered or cancelled, then purged.',
      tags: ['operations'],
      security: [{ bearer: [] }],
      response: { 200: Stats, 400: Errors[400], 401: Errors[401], 403: Errors[403], 429: Errors[429], 431: Errors[431], 503: Errors[503] },
    },
  }, async () => {
    const now = Date.now();
    // The capped counts one after the other: a stats call holds a few pool connections, not one per figure.
    const countAll = async () => {
      const counts: Array<readonly [MessageStatus, number]> = [];
      for (const s of MESSAGE_STATUSES) counts.push([s, await app.messages.countByStatus(s, STATS_COUNT_CAP)]);
      return { counts, pending: await app.deliveries.countByStatus('pending', STATS_COUNT_CAP), dead: await app.deliveries.countByStatus('dead', STATS_COUNT_CAP) };
    };
    const [{ counts, pending, dead }, oldest, tables, lastRun, lagMs] = await Promise.all([
      countAll(),
      app.stats.oldestPrepared(),
      app.stats.tableSizes(),
      app.purges.lastRun(PURGER_NAME),
      purgeLagMs(app.purges, retention, now),
    ]);
    return {
      messages: Object.fromEntries(counts) as Record<MessageStatus, number>,
      deliveries: { pending, dead },
      countsCappedAt: STATS_COUNT_CAP,
      oldestPrepared: oldest ? { id: oldest.id, createdAt: oldest.createdAt.toISOString(), ageMs: Math.max(0, now - oldest.createdAt.getTime()) } : null,
      tables,
      tableSizesAreEstimates: true as const,
      purge: { lastRunAt: lastRun?.lastRunAt.toISOString() ?? null, lagMs: Math.max(0, Math.round(lagMs)), retentionMs: retention },
    };
  });
};
