import { createHook } from 'node:async_hooks';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebhookSender } from './webhook.sender';

const servers: Server[] = [];
const senders: WebhookSender[] = [];

afterEach(async () => {
  await Promise.all(senders.splice(0).map((s) => s.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function endpoint(handler: RequestListener): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
}

function sender(): WebhookSender {
  const s = new WebhookSender({ allowPrivateUrls: true });
  senders.push(s);
  return s;
}

const request = (url: string, timeoutMs: number) => ({ url, messageId: 'm-1', topic: 'orders.paid', key: null, attempt: 1, body: '{"a":1}', headers: {}, secrets: ['whsec_dGVzdC1zZWNyZXQtdGVzdC1zZWNyZXQtdGVzdA=='], timeoutMs });

/**
 * Timers of `ms` armed while `work` ran that are still armed when it is done, Node's internal
 * ones included (the test's own endpoint arms timers of other lengths in this process).
 */
async function timersLeftArmed(ms: number, work: () => Promise<unknown>): Promise<number> {
  const armed = new Set<number>();
  const hook = createHook({
    init: (id, type, _trigger, resource) => void (type === 'Timeout' && (resource as { _idleTimeout?: number })._idleTimeout === ms && armed.add(id)),
    destroy: (id) => void armed.delete(id),
  }).enable();
  try {
    await work();
    // Destroy hooks are queued and run a little later.
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
  } finally {
    hook.disable();
  }
  return armed.size;
}

describe('WebhookSender timeout', () => {
  it('ends an answer that trickles in (headers on time, a byte now and then) at the timeout', async () => {
    const url = await endpoint((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      // Each byte comes well within the idle timeouts, so only the overall deadline ends it.
      const tick = setInterval(() => res.write('x'), 20);
      res.on('close', () => clearInterval(tick));
    });
    const started = performance.now();
    const result = await sender().send(request(url, 300));
    expect(result.ok).toBe(false);
    expect(result.error).toBe('no complete answer within 300 ms');
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  // AbortSignal.timeout kept a timer armed for the full timeout after every send (freed only
  // when a full collection took the signal): at hundreds of sends a second, thousands of
  // objects that each outlived their request and were promoted to the old generation.
  it('leaves no timer behind once the answer is in', async () => {
    const url = await endpoint((_req, res) => res.end('ok'));
    const s = sender();
    await s.send(request(url, 60_000)); // connection and pool warmed up
    let results: Array<{ ok: boolean }> = [];
    const left = await timersLeftArmed(60_000, async () => {
      results = await Promise.all(Array.from({ length: 20 }, () => s.send(request(url, 60_000))));
    });
    expect(results.every((r) => r.ok)).toBe(true);
    expect(left).toBe(0);
  });
});

describe('headers', () => {
  it("sends Herald's own headers whatever letter case a message or subscription header uses (a User-Agent could replace Herald's)", async () => {
    let seen: string[] = [];
    const url = await endpoint((req, res) => {
      seen = req.rawHeaders;
      res.writeHead(200).end();
    });
    const result = await sender().send({ ...request(url, 5_000), headers: { 'User-Agent': 'evil/1', 'X-Extra': 'kept' } });
    expect(result.ok).toBe(true);
    const values = (name: string) => seen.filter((_v, i) => i % 2 === 1 && seen[i - 1]!.toLowerCase() === name);
    expect(values('user-agent')).toEqual(['Herald-Webhooks/1']);
    expect(values('x-extra')).toEqual(['kept']);
  });
});
