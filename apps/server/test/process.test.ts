import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, PRODUCER_TOKEN, asProducer, createTestDatabase, prepareBody, testEnv } from './helpers';
import { spawnServer, startServer } from './server-process';

let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase('proc');
});
afterAll(async () => {
  await db?.drop();
});

const call = (base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = asProducer) =>
  fetch(`${base}${path}`, {
    method,
    headers: { ...headers, ...(body !== undefined && { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

const statusOf = async (res: Response | Promise<Response>) => ((await (await res).json()) as { status: string }).status;

describe('a real Herald process', () => {
  // Three Herald processes start in turn (two together); on a shared 2-core machine under load one
  // start can wait ten seconds for the CPU, so this test gets more than the default 30 s.
  it('keeps every message it answered 2xx for through kill -9, and replicas starting together share the migrated database', async () => {
    const fresh = await createTestDatabase('kill', { migrate: false });
    try {
      // Two replicas start at once against a database that does not exist yet.
      const [a, b] = await Promise.all([startServer(testEnv(fresh.url)), startServer(testEnv(fresh.url))]);
      const accepted = await Promise.all(
        Array.from({ length: 30 }, async (_, i) => {
          const server = i % 2 ? a : b;
          const id = `k9-${i}`;
          expect((await call(server.url, 'POST', '/v1/messages', prepareBody(id))).status).toBe(201);
          let status = 'prepared';
          if (i % 3 === 1) status = await statusOf(call(server.url, 'POST', `/v1/messages/${id}/confirm`));
          if (i % 3 === 2) status = await statusOf(call(server.url, 'POST', `/v1/messages/${id}/cancel`));
          return { id, status };
        }),
      );
      // Then a stream of prepares from 16 callers at once, with kill -9 landing as the tenth
      // answer arrives: callers keep sending until then, so requests are in flight when it lands
      // (a single burst could be answered whole by one group commit before the kill).
      const burst = Array.from({ length: 2_000 }, (_, i) => `burst-${i}`);
      let next = 0;
      let killed = false;
      let tenthAnswer: () => void = () => undefined;
      const tenAnswered = new Promise<void>((resolve) => (tenthAnswer = resolve));
      const settledAnswers: Array<{ id: string; status: number }> = [];
      const callers = Array.from({ length: 16 }, async () => {
        while (!killed && next < burst.length) {
          const id = burst[next++] as string;
          const status = await call(a.url, 'POST', '/v1/messages', prepareBody(id)).then((r) => r.status, () => 0);
          settledAnswers.push({ id, status });
          if (settledAnswers.filter((r) => r.status === 201).length === 10) tenthAnswer();
        }
      });
      // (or as the stream ends without ten answers, which the assertions below report)
      void Promise.all(callers).then(() => tenthAnswer());
      await tenAnswered;
      killed = true;
      a.child.kill('SIGKILL');
      b.child.kill('SIGKILL');
      expect((await a.exited).signal).toBe('SIGKILL');
      await b.exited;
      await Promise.all(callers);
      const settled = settledAnswers;
      const answered201 = settled.filter((r) => r.status === 201).map((r) => r.id);
      const unanswered = settled.filter((r) => r.status !== 201).map((r) => r.id);
      // The kill must have cut the burst, or this test proves nothing about in-flight writes.
      expect(unanswered.length).toBeGreaterThan(0);

      const restarted = await startServer(testEnv(fresh.url));
      try {
        await Promise.all(
          accepted.map(async ({ id, status }) => {
            const res = await call(restarted.url, 'GET', `/v1/messages/${id}`);
            expect(res.status, id).toBe(200);
            expect(await statusOf(res), id).toBe(status);
          }),
        );
        // Every 201 is durable; a write cut off unanswered is either whole or absent, never torn.
        await Promise.all(answered201.map(async (id) => expect(await statusOf(call(restarted.url, 'GET', `/v1/messages/${id}`)), id).toBe('prepared')));
        await Promise.all(
          unanswered.map(async (id) => {
            const res = await call(restarted.url, 'GET', `/v1/messages/${id}`);
            if (res.status === 200) expect((await res.json()) as object, id).toMatchObject({ status: 'prepared', payload: prepareBody(id).payload });
            else expect(res.status, id).toBe(404);
          }),
        );
        console.log(`[process] kill -9 during a stream of prepares from 16 callers: ${answered201.length} answered 201 (all found after restart), ${unanswered.length} cut off`);
        expect(restarted.output()).toContain('"applied":[]');
      } finally {
        restarted.child.kill('SIGTERM');
        await restarted.exited;
      }
    } finally {
      await fresh.drop();
    }
  }, 90_000);

  it('drains and exits 0 on SIGTERM, answering a request already in flight', async () => {
    const server = await startServer(testEnv(db.url));
    // A keep-alive client (fetch) whose request has reached the server when the signal comes.
    const inFlight = call(server.url, 'POST', '/v1/messages', prepareBody('sigterm-1'));
    const deadline = Date.now() + 5_000;
    while (!server.output().includes('"url":"/v1/messages"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    server.child.kill('SIGTERM');
    expect((await inFlight).status).toBe(201);
    const started = Date.now();
    const { code } = await server.exited;
    expect(code).toBe(0);
    // Well inside the 25 s deadline: the keep-alive socket must not hold the close open.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(server.output()).toContain('shutdown complete');
    const again = await startServer(testEnv(db.url));
    try {
      expect((await call(again.url, 'GET', '/v1/messages/sigterm-1')).status).toBe(200);
    } finally {
      again.child.kill('SIGTERM');
      await again.exited;
    }
  });

  it('refuses to start without API keys unless explicitly told to run without auth', async () => {
    const env = testEnv(db.url, { HERALD_API_KEYS: '' });
    const refused = await spawnServer(env);
    expect((await refused.exited).code).toBe(78);
    expect(refused.output()).toContain('HERALD_API_KEYS is empty');
    expect(refused.output()).toContain('HERALD_INSECURE_NO_AUTH=true');

    const open = await startServer({ ...env, HERALD_INSECURE_NO_AUTH: 'true' });
    try {
      expect((await call(open.url, 'POST', '/v1/messages', prepareBody('no-auth-1'), {})).status).toBe(201);
      expect(open.output()).toContain('authentication is DISABLED');
    } finally {
      open.child.kill('SIGTERM');
      await open.exited;
    }
  });

  it('stops on a wrong setting with a message naming the variable', async () => {
    for (const [name, value] of [['PORT', 'eighty'], ['HERALD_MAX_BODY_BYTES', '12'], ['HERALD_ROLE', 'both'], ['DATABASE_URL', 'postgres://x/y']]) {
      const proc = await spawnServer(testEnv(db.url, { [name as string]: value as string }));
      expect((await proc.exited).code).toBe(78);
      expect(proc.output()).toMatch(new RegExp(`configuration error: ${name}`));
    }
  });

  it('never writes a bearer token to its logs', async () => {
    const server = await startServer(testEnv(db.url, { HERALD_LOG_LEVEL: 'trace' }));
    try {
      await call(server.url, 'POST', '/v1/messages', prepareBody('log-1'));
      await call(server.url, 'GET', '/v1/messages/log-1', undefined, { authorization: `Bearer ${ADMIN_TOKEN}` });
      await call(server.url, 'GET', '/v1/messages/log-1', undefined, { authorization: 'Bearer wrong-token-that-is-long-enough' });
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    const logs = server.output();
    expect(logs).toContain('request completed');
    for (const secret of [PRODUCER_TOKEN, ADMIN_TOKEN, 'wrong-token-that-is-long-enough']) expect(logs).not.toContain(secret);
  });
});
