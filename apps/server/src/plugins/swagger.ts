import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { ErrorResponse, Message, Subscription } from '@herald/contract';
import { HERALD_VERSION } from '../version';

/**
 * The OpenAPI document is generated from the routes' TypeBox schemas; openapi.yaml at the
 * repository root is this document written out (`npm run openapi`), and a test fails on drift.
 */
export const swaggerPlugin = fp(
  async (app) => {
    app.addSchema(ErrorResponse);
    app.addSchema(Message);
    app.addSchema(Subscription);
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Herald',
          version: HERALD_VERSION,
          description:
            'Reliable messages between systems. Prepare a half message, run your local transaction, then confirm or cancel; ' +
            'Herald checks back with the producer when it hears nothing, and delivers every confirmed message at least once.',
        },
        tags: [
          { name: 'messages', description: 'Prepare, confirm, cancel and inspect transactional messages' },
          { name: 'subscriptions', description: 'Where confirmed messages are delivered (admin)' },
          { name: 'operations', description: 'Health, readiness and metrics' },
        ],
        components: {
          securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A token from HERALD_API_KEYS' } },
        },
      },
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list', deepLinking: true } });
  },
  { name: 'herald-swagger' },
);
