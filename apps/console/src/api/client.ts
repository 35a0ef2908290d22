import createClient from 'openapi-fetch';
import type { components, paths } from './schema';
import { session } from '../session';

/** Herald's API, typed from openapi.yaml; every call carries the signed-in token. */
export const api = createClient<paths>({ baseUrl: location.origin });

api.use({
  onRequest({ request }) {
    const token = session.token();
    if (token) request.headers.set('authorization', `Bearer ${token}`);
    return request;
  },
});

export type Message = components['schemas']['Message'];
export type Subscription = components['schemas']['Subscription'];
export type Schema<Path extends keyof paths, Method extends 'get' | 'post' | 'patch', Code extends number = 200> = paths[Path][Method] extends {
  responses: { [C in Code]: { content: { 'application/json': infer Body } } };
}
  ? Body
  : never;

/** The `message` of Herald's error answer, or a fallback naming the status. */
export function problemText(error: unknown, response: Response): string {
  const message = (error as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' ? message : `Herald answered ${response.status}`;
}
