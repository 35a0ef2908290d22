import type { FastifyRequest } from 'fastify';
import type { AuditEntry } from '@herald/db';

/** An admin's write is an operator action, kept in the audit log; a producer's own is not. */
export function operatorAction(request: FastifyRequest, action: string, targetType: AuditEntry['targetType'], targetId: string, reason?: string): AuditEntry | undefined {
  if (request.caller?.role !== 'admin') return undefined;
  return { actor: request.caller.name, action, targetType, targetId, reason: reason ?? null };
}
