import type { FastifyRequest } from 'fastify';
import type { AuditEntry } from '@herald/db';

/**
 * An admin's write is an operator action, kept in the audit log; a producer's own is not. A
 * message target names its tenant too: ids are unique per tenant only.
 */
export function operatorAction(request: FastifyRequest, action: string, targetType: AuditEntry['targetType'], target: string | { tenant: string; id: string }, reason?: string): AuditEntry | undefined {
  if (request.caller?.role !== 'admin') return undefined;
  const [targetId, tenant] = typeof target === 'string' ? [target, null] : [target.id, target.tenant];
  return { actor: request.caller.name, action, targetType, targetId, tenant, reason: reason ?? null };
}
