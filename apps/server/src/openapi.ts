import { buildApp } from './app';
import { parseConfig } from './config';

/**
 * The OpenAPI document as the running service serves it at /docs/json, in YAML. Built from an
 * app that connects nowhere, so it can be written without backing services.
 */
export async function renderOpenApiYaml(): Promise<string> {
  const app = await buildApp(parseConfig({ HERALD_INSECURE_NO_AUTH: 'true', HERALD_RATE_LIMIT_PER_MINUTE: '0' }), { logger: false, worker: false });
  try {
    await app.ready();
    return app.swagger({ yaml: true });
  } finally {
    await app.close();
  }
}
