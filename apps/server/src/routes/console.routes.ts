import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AuditList, Caller, Errors, ListAuditQuery, MinuteRates, SubscriptionHealthList, SubscriptionHealthQuery } from '@herald/contract';
import { badRequest, HttpProblem } from '../plugins/errors';

const security = [{ bearer: [] }];
const errors = { 400: Errors[400], 401: Errors[401], 403: Errors[403], 429: Errors[429], 431: Errors[431], 503: Errors[503] };

const encodeCursor = (id: number) => Buffer.from(`a${id}`).toString('base64url');
function decodeCursor(cursor: string): number | undefined {
  const match = /^a([1-9][0-9]{0,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return match ? Number(match[1]) : undefined;
}

/** What the console reads besides messages and subscriptions: who is signed in, the audit log, recent rates. */
export const consoleRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/v1/me', {
    config: { access: 'producer' as const },
    schema: {
      operationId: 'getCaller',
      summary: 'The calling key’s name and role',
      description: 'Lets a client (the console) offer only what the key may do.',
      tags: ['operations'],
      security,
      response: { 200: Caller, ...errors },
    },
  }, async (request) => {
    if (!request.caller) throw new HttpProblem(401, 'missing bearer token: send Authorization: Bearer <token>');
    return { name: request.caller.name, role: request.caller.role };
  });

  app.get('/v1/audit', {
    config: { access: 'admin' as const },
    schema: {
      operationId: 'listAudit',
      summary: 'The operator audit log, newest first',
      description: 'Every operator action (an admin’s write, from the console or the API): who, what, when, the reason and the outcome. Producers’ own confirms and cancels are not in it.',
      tags: ['operations'],
      security,
      querystring: ListAuditQuery,
      response: { 200: AuditList, ...errors },
    },
  }, async (request) => {
    const { limit = 50, cursor, targetType, targetId, tenant } = request.query;
    const beforeId = cursor === undefined ? undefined : decodeCursor(cursor);
    if (cursor !== undefined && beforeId === undefined) throw badRequest({ field: 'cursor', reason: 'is not a cursor this service issued' }, 'querystring');
    const page = await app.audit.list({ limit, beforeId, targetType, targetId, tenant });
    return {
      items: page.items.map((e) => ({ ...e, at: e.at.toISOString() })),
      nextCursor: page.nextBeforeId === null ? null : encodeCursor(page.nextBeforeId),
    };
  });

  app.get('/v1/stats/rates', {
    config: { access: 'admin' as const },
    schema: {
      operationId: 'getMinuteRates',
      summary: 'Per-minute counts of the last hour',
      description: 'Messages created, messages confirmed and deliveries delivered in each of the last 60 minutes. Each series reads one index range of the last hour.',
      tags: ['operations'],
      security,
      response: { 200: MinuteRates, ...errors },
    },
  }, async () => {
    const rates = await app.rates.perMinute(60);
    return { ...rates, minutes: rates.minutes.map((m) => m.toISOString()) };
  });

  app.get('/v1/stats/subscriptions', {
    config: { access: 'admin' as const },
    schema: {
      operationId: 'getSubscriptionHealth',
      summary: 'Each subscription’s delivered and dead counts and last error',
      description: 'Over the last `windowMs` (default 1 hour), for the first 500 subscriptions: the failure rate is dead / (delivered + dead).',
      tags: ['operations'],
      security,
      querystring: SubscriptionHealthQuery,
      response: { 200: SubscriptionHealthList, ...errors },
    },
  }, async (request) => {
    const windowMs = request.query.windowMs ?? 3600_000;
    const subscriptions = await app.subscriptions.list(500);
    const health = await app.rates.subscriptionHealth(subscriptions.map((s) => s.id), windowMs);
    return {
      windowMs,
      items: health.map((h) => ({
        ...h,
        failureRate: h.delivered + h.dead === 0 ? 0 : h.dead / (h.delivered + h.dead),
        lastDeadAt: h.lastDeadAt ? h.lastDeadAt.toISOString() : null,
      })),
    };
  });
};
