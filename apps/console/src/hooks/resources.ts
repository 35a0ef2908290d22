import { api } from '../api/client';
import type { paths } from '../api/schema';
import { useResource } from './use-resource';

// One hook per resource the console reads; pages never call the API for reads themselves.

export const useCaller = (token: string | null) => useResource(() => api.GET('/v1/me'), [token]);

export const useRates = () => useResource(() => api.GET('/v1/stats/rates'), []);

export type MessageQuery = NonNullable<paths['/v1/messages']['get']['parameters']['query']>;
export const useMessages = (query: MessageQuery) =>
  useResource(() => api.GET('/v1/messages', { params: { query } }), [JSON.stringify(query)]);

/** `tenant` names which tenant's message when several hold the id. */
export const useMessage = (id: string, round: number, tenant?: string) =>
  useResource(() => api.GET('/v1/messages/{id}', { params: { path: { id }, query: tenant ? { tenant } : {} } }), [id, round, tenant]);

export const useDeliveries = (id: string, round: number, tenant?: string) =>
  useResource(() => api.GET('/v1/messages/{id}/deliveries', { params: { path: { id }, query: tenant ? { tenant } : {} } }), [id, round, tenant]);

export const useSubscriptions = (round: number) => useResource(() => api.GET('/v1/subscriptions', { params: { query: { limit: 500 } } }), [round]);

export const useSubscriptionHealth = (round: number) => useResource(() => api.GET('/v1/stats/subscriptions'), [round]);

/** The keys an ordered subscription is held up on, oldest block first. */
export const useBlockedKeys = (id: string, cursor: string | undefined, round: number) =>
  useResource(() => api.GET('/v1/subscriptions/{id}/blocked-keys', { params: { path: { id }, query: { limit: 50, cursor } } }), [id, cursor, round]);

export type AuditQuery = NonNullable<paths['/v1/audit']['get']['parameters']['query']>;
export const useAudit = (query: AuditQuery, round = 0) => useResource(() => api.GET('/v1/audit', { params: { query } }), [JSON.stringify(query), round]);

/**
 * GET /v1/stats is not in this build's openapi.yaml yet, so it is read untyped and the overview
 * shows only the fields it finds; regenerate the types (`nx run console:types`) once it is.
 */
export const useStats = () =>
  useResource(() => (api.GET as unknown as (path: string) => Promise<{ data?: Record<string, unknown>; error?: unknown; response: Response }>)('/v1/stats'), []);

const none = () => Promise.resolve({ data: undefined, response: new Response(null, { status: 204 }) });

/** The message with this exact id, if any (a search text may be an id). */
export const useMessageLookup = (id: string | undefined, tenant?: string) =>
  useResource(() => (id ? api.GET('/v1/messages/{id}', { params: { path: { id }, query: tenant ? { tenant } : {} } }) : none()), [id, tenant]);
