import { and, desc, eq, lt, type SQL } from 'drizzle-orm';
import type { HeraldDb } from './connection';
import { auditLog, type AuditRow } from './schema/audit';
import type { Tx } from './transactions';

/** What an operator did, before it is known how it came out. */
export interface AuditEntry {
  /** The name of the key that acted. */
  actor: string;
  /** `message.confirm`, `subscription.disable`, …: `<target type>.<verb>`. */
  action: string;
  targetType: 'message' | 'subscription';
  targetId: string;
  /** The tenant of the message acted on (ids are unique per tenant); null for a subscription. */
  tenant?: string | null;
  reason?: string | null;
}

export interface AuditRecord extends Required<AuditEntry> {
  id: number;
  at: Date;
  tenant: string | null;
  reason: string | null;
  outcome: string;
}

export interface AuditListFilter {
  limit: number;
  /** Entries older than this id (exclusive): the previous page's last id. */
  beforeId?: number;
  targetType?: AuditEntry['targetType'];
  targetId?: string;
  tenant?: string;
}

/** Writes one audit row with `executor`, so a change and its record can commit together. */
export async function writeAudit(executor: HeraldDb | Tx, entry: AuditEntry, outcome: string, at: Date): Promise<void> {
  await executor.insert(auditLog).values({
    at,
    actor: entry.actor.slice(0, 64),
    action: entry.action,
    targetType: entry.targetType,
    targetId: entry.targetId,
    tenant: entry.tenant ?? null,
    reason: entry.reason ? entry.reason.slice(0, 500) : null,
    outcome: outcome.slice(0, 200),
  });
}

const toRecord = (row: AuditRow): AuditRecord => ({ ...row, targetType: row.targetType as AuditEntry['targetType'] });

/** The operator audit log: append, and read newest first. */
export class AuditRepository {
  constructor(
    private readonly db: HeraldDb,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Records an action whose change (if any) committed on its own. */
  record(entry: AuditEntry, outcome: string): Promise<void> {
    return writeAudit(this.db, entry, outcome, this.now());
  }

  async list(filter: AuditListFilter): Promise<{ items: AuditRecord[]; nextBeforeId: number | null }> {
    const where: SQL[] = [];
    if (filter.beforeId !== undefined) where.push(lt(auditLog.id, filter.beforeId));
    if (filter.targetType) where.push(eq(auditLog.targetType, filter.targetType));
    if (filter.targetId) where.push(eq(auditLog.targetId, filter.targetId));
    if (filter.tenant) where.push(eq(auditLog.tenant, filter.tenant));
    const rows = await this.db
      .select()
      .from(auditLog)
      .where(where.length ? and(...where) : undefined)
      .orderBy(desc(auditLog.id))
      .limit(filter.limit + 1);
    const page = rows.slice(0, filter.limit);
    const last = page.at(-1);
    return { items: page.map(toRecord), nextBeforeId: rows.length > filter.limit && last ? last.id : null };
  }
}
