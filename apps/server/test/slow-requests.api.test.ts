import { connect, type Socket } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { ADMIN_TOKEN, buildTestApp, createTestDatabase } from './helpers';

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let port: number;

beforeAll(async () => {
  db = await createTestDatabase('slow');
  app = await buildTestApp(db.url, { HERALD_REQUEST_TIMEOUT_MS: '1000', HERALD_MAX_BODY_BYTES: '4096' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as { port: number }).port;
});
afterAll(async () => {
  await app.close();
  await db.drop();
});

/** Opens a raw connection, sends `head`, then one body byte every 100 ms; resolves with all it read once closed. */
function trickle(head: string): Promise<{ text: string; closedAfterMs: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1', () => socket.write(head));
    let text = '';
    const drip = setInterval(() => socket.writable && socket.write('x'), 100);
    const giveUp = setTimeout(() => {
      clearInterval(drip);
      socket.destroy();
      reject(new Error(`still open after 8 s; read so far: ${text}`));
    }, 8_000);
    socket.on('data', (chunk) => (text += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(drip);
      clearTimeout(giveUp);
      resolve({ text, closedAfterMs: Date.now() - started });
    });
  });
}

const headOf = (headers: string) => `POST /v1/subscriptions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${headers}\r\n`;

describe('slow and refused requests (a body trickled in kept the connection open for ever)', () => {
  it('answers 408 and closes the connection when the body is not in by HERALD_REQUEST_TIMEOUT_MS', async () => {
    const { text, closedAfterMs } = await trickle(headOf(`Authorization: Bearer ${ADMIN_TOKEN}\r\nContent-Length: 4000\r\n`));
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toContain('HERALD_REQUEST_TIMEOUT_MS');
    expect(closedAfterMs).toBeLessThan(4_000);
  });

  it('closes the connection right after a 401, however much body the client still means to send', async () => {
    const { text, closedAfterMs } = await trickle(headOf('Content-Length: 100000\r\n'));
    expect(text).toMatch(/^HTTP\/1\.1 401 /);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(closedAfterMs).toBeLessThan(900);
  });

  it('closes the connection after a 413', async () => {
    const { text, closedAfterMs } = await trickle(headOf(`Authorization: Bearer ${ADMIN_TOKEN}\r\nContent-Length: 100000\r\n`).replace('POST /v1/subscriptions', 'POST /v1/messages'));
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(closedAfterMs).toBeLessThan(900);
  });

  it('answers 431 to headers larger than Node accepts, instead of resetting the connection', async () => {
    const { text } = await trickle(headOf(`Authorization: Bearer ${ADMIN_TOKEN}\r\nX-Big: ${'a'.repeat(1_000_000)}\r\nContent-Length: 10\r\n`));
    expect(text).toMatch(/^HTTP\/1\.1 431 /);
    // An HTTP client still sending its body saw the connection reset instead of the answer.
    const res = await request(`http://127.0.0.1:${port}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', 'x-big': 'a'.repeat(20_000) },
      body: 'x'.repeat(2_000_000),
    });
    expect(res.statusCode).toBe(431);
    expect((await res.body.json()) as object).toMatchObject({ statusCode: 431 });
  });
});
