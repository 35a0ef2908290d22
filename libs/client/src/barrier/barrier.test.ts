import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldClient } from '../client';
import type { TransactionRunner } from '../transaction.runner';
import { HeraldBarrier, UnexpectedPrepareError, type TransactionMessage } from './barrier';

// A real HTTP server standing in for Herald's answers to prepare; the database side is a runner
// that records whether the local transaction ran at all.
let prepareAnswer: (id: string) => object = (id) => ({ id, status: 'prepared' });
const requests: Array<{ method: string; url: string; body: string }> = [];
let baseUrl = '';
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', body });
    const id = body ? (JSON.parse(body) as { id: string }).id : '';
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(req.url === '/v1/messages' ? prepareAnswer(id) : { id, status: 'cancelled' }));
  });
});
beforeAll(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => ((baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`), resolve()))));
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function barrier() {
  const ran: string[] = [];
  const transactions: TransactionRunner<null> = {
    run: async (work) => {
      ran.push('transaction');
      return work(null, async () => undefined);
    },
  };
  const b = new HeraldBarrier({ client: new HeraldClient({ baseUrl, retry: { attempts: 1 } }), transactions, checkUrl: 'http://127.0.0.1:1/check' });
  return { b, ran };
}

describe('HeraldBarrier message ids', () => {
  it('refuses a caller-chosen id before anything is sent (a reused id could cancel a committed message)', async () => {
    requests.length = 0;
    const { b, ran } = barrier();
    const message = { id: 'order-1', topic: 'order.paid', payload: {} } as unknown as TransactionMessage;
    await expect(b.transaction(message, async () => 'x')).rejects.toThrow(TypeError);
    expect(requests).toEqual([]);
    expect(ran).toEqual([]);
  });

  it('generates a fresh random id for every transaction', async () => {
    requests.length = 0;
    const { b } = barrier();
    const first = await b.transaction({ topic: 'order.paid', payload: {} }, async () => 1);
    const second = await b.transaction({ topic: 'order.paid', payload: {} }, async () => 2);
    expect(first.messageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(second.messageId).not.toBe(first.messageId);
  });

  it.each(['cancelled', 'confirmed', 'delivered'])('a prepare answer with a %s message runs nothing locally and sends no cancel', async (status) => {
    requests.length = 0;
    prepareAnswer = (id) => ({ id, status });
    try {
      const { b, ran } = barrier();
      await expect(b.transaction({ topic: 'order.paid', payload: {} }, async () => 'x')).rejects.toBeInstanceOf(UnexpectedPrepareError);
      expect(ran).toEqual([]);
      expect(requests.map((r) => r.url)).toEqual(['/v1/messages']);
    } finally {
      prepareAnswer = (id) => ({ id, status: 'prepared' });
    }
  });
});
