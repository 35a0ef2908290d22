import { Type, type Static } from '@sinclair/typebox';
import { MESSAGE_STATUSES } from '@herald/domain';
import { MessageId, Timestamp } from './common.schema';

const Capped = (what: string) => Type.Integer({ minimum: 0, description: `${what}, counted up to \`countsCappedAt\`: a figure equal to the cap means at least that many` });

const TableSize = Type.Object({
  name: Type.String({ examples: ['messages'] }),
  rows: Type.Integer({ minimum: 0, description: 'InnoDB’s estimate of the row count, not an exact count' }),
  dataBytes: Type.Integer({ minimum: 0, description: 'Bytes of the clustered index (the rows), as InnoDB estimates them' }),
  indexBytes: Type.Integer({ minimum: 0, description: 'Bytes of the secondary indexes, as InnoDB estimates them' }),
});

/** `GET /v1/stats`: figures that stay cheap on a hundred million rows (capped counts, InnoDB estimates, index probes). */
export const Stats = Type.Object(
  {
    messages: Type.Object(Object.fromEntries(MESSAGE_STATUSES.map((s) => [s, Capped(`Messages in \`${s}\``)])) as Record<(typeof MESSAGE_STATUSES)[number], ReturnType<typeof Capped>>),
    deliveries: Type.Object({
      pending: Capped('Deliveries not yet delivered or dead: the delivery backlog'),
      dead: Capped('Deliveries that gave up (their messages are `failed` until replayed)'),
    }),
    countsCappedAt: Type.Integer({ minimum: 1, description: 'No count above goes beyond this: each reads at most this many index entries', examples: [100000] }),
    oldestPrepared: Type.Union([Type.Object({ id: MessageId, createdAt: Timestamp, ageMs: Type.Integer({ minimum: 0 }) }), Type.Null()], {
      description: 'The prepared message stored first (awaiting its producer’s decision the longest), or null',
    }),
    tables: Type.Array(TableSize, { description: 'Herald’s tables as InnoDB estimates them (information_schema.TABLES): sizes, not counts' }),
    tableSizesAreEstimates: Type.Literal(true),
    purge: Type.Object({
      lastRunAt: Type.Union([Timestamp, Type.Null()], { description: 'When a purger (any worker) last finished a run; null: never' }),
      lagMs: Type.Integer({ minimum: 0, description: 'How long the oldest purgeable message has waited past its retention (0: the purger keeps up)' }),
      retentionMs: Type.Object(
        {
          delivered: Type.Integer({ minimum: 0 }),
          cancelled: Type.Integer({ minimum: 0 }),
          failed: Type.Integer({ minimum: 0 }),
        },
        { description: 'How long each terminal status is kept; 0 = forever. A purged message answers 404 and its id may be prepared again' },
      ),
    }),
  },
  { description: 'Counts by state, the backlog, the oldest prepared message, table sizes and the purger’s progress' },
);
export type Stats = Static<typeof Stats>;
