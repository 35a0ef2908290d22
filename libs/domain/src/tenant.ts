/** The tenant of messages stored before tenants existed, and of an admin's key without one. */
export const DEFAULT_TENANT = 'default';

/** Tenant names: 1–64 characters of a-z 0-9 _ -. They never contain `/`, which ids never contain either. */
export const TENANT_NAME = /^[a-z0-9_-]{1,64}$/;

/**
 * The id consumers de-duplicate by (`webhook-id`, AMQP `messageId`): unique across tenants. The
 * default tenant keeps the bare id, so consumers of a Herald without tenants see no change; any
 * other is `<tenant>/<id>`, unambiguous because neither a tenant nor an id may contain `/`.
 */
export function consumerMessageId(tenant: string, id: string): string {
  return tenant === DEFAULT_TENANT ? id : `${tenant}/${id}`;
}
