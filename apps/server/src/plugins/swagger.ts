import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { OptionalKind } from '@sinclair/typebox';
import { ErrorResponse, Message, Subscription } from '@herald/contract';
import { HERALD_VERSION } from '../version';
import { finishDocument, operationKey } from './openapi-document';

/**
 * The OpenAPI document is generated from the routes' TypeBox schemas; openapi.yaml at the
 * repository root is this document written out (`npm run openapi`), and a test fails on drift.
 */
export const swaggerPlugin = fp(
  async (app) => {
    app.addSchema(ErrorResponse);
    app.addSchema(Message);
    app.addSchema(Subscription);
    const optionalBodies = new Set<string>();
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Herald',
          version: HERALD_VERSION,
          description:
            'Reliable messages between systems. Prepare a half message, run your local transaction, then confirm or cancel; ' +
            'Herald checks back with the producer when it hears nothing, and delivers every confirmed message at least once.',
          license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
        },
        // Relative: Swagger UI and clients call the Herald that serves the document.
        servers: [{ url: '/', description: 'The Herald instance serving this document' }],
        tags: [
          { name: 'messages', description: 'Prepare, confirm, cancel and inspect transactional messages' },
          { name: 'subscriptions', description: 'Where confirmed messages are delivered (admin)' },
          { name: 'operations', description: 'Health, readiness and metrics' },
        ],
        components: {
          securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A token from HERALD_API_KEYS' } },
        },
      },
      transform: ({ schema, url, route }) => {
        const body = (schema as { body?: object } | undefined)?.body;
        if (body && OptionalKind in body) {
          for (const method of [route.method].flat()) optionalBodies.add(operationKey(method, url));
        }
        return { schema, url };
      },
      transformObject: (document) =>
        'openapiObject' in document ? (finishDocument(document.openapiObject as Record<string, unknown>, optionalBodies) as typeof document.openapiObject) : document.swaggerObject,
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list', deepLinking: true } });
  },
  { name: 'herald-swagger' },
);
