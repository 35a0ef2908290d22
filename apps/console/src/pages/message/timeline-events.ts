import type { Message, Schema } from '../../api/client';

type Deliveries = Schema<'/v1/messages/{id}/deliveries', 'get'>['items'];
type Audit = Schema<'/v1/audit', 'get'>['items'];

export interface TimelineEvent {
  /** null for a state that still holds (a delivery waiting its turn): listed last. */
  at: string | null;
  kind: 'prepare' | 'check' | 'decision' | 'operator' | 'attempt' | 'delivery';
  title: string;
  details: string[];
  ok?: boolean;
  excerpt?: string | null;
}

const ms = (n: number) => `${n} ms`;

/** Everything that happened to a message, oldest first: what the timeline page lists. */
export function timelineEvents(message: Message, deliveries: Deliveries, audit: Audit): TimelineEvent[] {
  const events: TimelineEvent[] = [];
  // A direct publish is stored confirmed: its confirm time is its creation time.
  const published = message.confirmedAt === message.createdAt;
  events.push({ at: message.createdAt, kind: 'prepare', title: published ? 'Published (confirmed directly)' : 'Prepared', details: [`topic ${message.topic}`, ...(message.key ? [`key ${message.key}`] : [])] });
  for (const c of message.checkAttempts ?? []) {
    events.push({
      at: c.at,
      kind: 'check',
      title: `Check-back ${c.check}: ${c.answer}`,
      details: [c.statusCode === null ? 'no HTTP answer' : `HTTP ${c.statusCode}`, ms(c.durationMs), ...(c.error ? [`reason: ${c.error}`] : [])],
      ok: c.answer !== 'unknown',
    });
  }
  if (message.confirmedAt && !published) events.push({ at: message.confirmedAt, kind: 'decision', title: 'Confirmed', details: [] });
  if (message.cancelledAt) events.push({ at: message.cancelledAt, kind: 'decision', title: 'Cancelled', details: [] });
  for (const a of audit) {
    events.push({ at: a.at, kind: 'operator', title: `Operator ${a.action.replace(/^message\./, '')} by ${a.actor}: ${a.outcome}`, details: a.reason ? [`reason: ${a.reason}`] : [] });
  }
  for (const d of deliveries) {
    for (const a of d.attemptsLog) {
      events.push({
        at: a.startedAt,
        kind: 'attempt',
        title: `Delivery attempt ${a.attempt}${a.generation ? ` (replay ${a.generation})` : ''} to ${d.subscriptionId}: ${a.ok ? 'ok' : 'failed'}`,
        details: [a.statusCode === null ? 'no HTTP status' : `HTTP ${a.statusCode}`, ms(a.durationMs), ...(a.error ? [`error: ${a.error}`] : [])],
        ok: a.ok,
        excerpt: a.responseExcerpt,
      });
    }
    if (d.deliveredAt) events.push({ at: d.deliveredAt, kind: 'delivery', title: `Delivered to ${d.subscriptionId}`, details: [], ok: true });
    if (d.deadAt) events.push({ at: d.deadAt, kind: 'delivery', title: `Dead at ${d.subscriptionId}`, details: d.lastError ? [d.lastError] : [], ok: false });
    if (d.skippedAt) events.push({ at: d.skippedAt, kind: 'delivery', title: `Skipped at ${d.subscriptionId}: later messages of its key went on`, details: [] });
    // Only an ordered subscription leaves a pending delivery with no next attempt.
    if (d.status === 'pending' && d.nextAttemptAt === null) events.push({ at: null, kind: 'delivery', title: `Waiting at ${d.subscriptionId} for an earlier message of its key`, details: [] });
  }
  // Stable: events at the same millisecond keep the order they were added in (cause before effect).
  const order = (e: TimelineEvent) => e.at ?? '\uffff';
  return events.map((e, i) => ({ e, i })).sort((a, b) => order(a.e).localeCompare(order(b.e)) || a.i - b.i).map(({ e }) => e);
}
