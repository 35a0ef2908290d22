import { isDeepStrictEqual } from 'node:util';

/**
 * Corrections to the document @fastify/swagger generates, for what route schemas cannot say:
 * a body the route accepts absent is not `required`, and a discriminator names its branches.
 */
type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export function finishDocument(document: Json, optionalBodies: ReadonlySet<string>): Json {
  const paths = (document.paths ?? {}) as Record<string, Record<string, { requestBody?: { required?: boolean } }>>;
  for (const [path, operations] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      // @fastify/swagger marks every body required; Herald's Type.Optional bodies may be left out.
      if (operation.requestBody && optionalBodies.has(operationKey(method, path))) operation.requestBody.required = false;
    }
  }
  const components = ((document.components as Json | undefined)?.schemas ?? {}) as Record<string, Json>;
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!isObject(node)) return;
    if (isObject(node.discriminator) && Array.isArray(node.oneOf)) nameBranches(node, components);
    Object.values(node).forEach(visit);
  };
  visit(document.paths);
  for (const schema of Object.values(components)) visit(schema);
  return document;
}

/** `post /v1/messages/{id}/redeliver`: the key of one operation, as the document spells it. */
export function operationKey(method: string, path: string): string {
  return `${method.toLowerCase()} ${path.replace(/:(\w+)/g, '{$1}')}`;
}

// A branch that Ajv needs inline (it accepts no discriminator mapping) becomes a $ref to the
// component its $id produced, and the mapping lists each branch's value of the property.
function nameBranches(node: Json, components: Record<string, Json>): void {
  const discriminator = node.discriminator as { propertyName: string; mapping?: Record<string, string> };
  const mapping: Record<string, string> = {};
  node.oneOf = (node.oneOf as unknown[]).map((branch) => {
    const [name, schema] = Object.entries(components).find(([, c]) => isDeepStrictEqual(c, branch)) ?? [];
    if (!name || !schema) return branch;
    const ref = `#/components/schemas/${name}`;
    const tag = (schema.properties as Record<string, { enum?: unknown[]; const?: unknown }> | undefined)?.[discriminator.propertyName];
    const value = tag?.const ?? (tag?.enum?.length === 1 ? tag.enum[0] : undefined);
    if (typeof value === 'string') mapping[value] = ref;
    return { $ref: ref };
  });
  if (Object.keys(mapping).length === (node.oneOf as unknown[]).length) discriminator.mapping = mapping;
}
