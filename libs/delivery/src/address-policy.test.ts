import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isPrivateAddress, privateUrlProblem } from './address-policy';
import { WebhookSender } from './webhook.sender';

describe('isPrivateAddress', () => {
  it.each(['127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'fd00::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1'])(
    'refuses %s',
    (ip) => expect(isPrivateAddress(ip)).toBe(true),
  );
  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '93.184.216.34', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('allows %s', (ip) => expect(isPrivateAddress(ip)).toBe(false));
});

describe('privateUrlProblem', () => {
  it('refuses literal private addresses and localhost names', () => {
    for (const url of ['http://127.0.0.1:8080/x', 'http://169.254.169.254/latest/meta-data/', 'http://[::1]/x', 'https://10.0.0.5/hook', 'http://LOCALHOST/x', 'http://api.localhost/x', 'http://[::ffff:7f00:1]/x']) {
      expect(privateUrlProblem(url), url).toMatch(/HERALD_ALLOW_PRIVATE_URLS/);
    }
  });
  it('leaves public names and addresses to the connect-time check', () => {
    expect(privateUrlProblem('https://hooks.example.com/x')).toBeUndefined();
    expect(privateUrlProblem('http://8.8.8.8/x')).toBeUndefined();
  });
});

describe('WebhookSender with private URLs refused', () => {
  it('refuses a host name that resolves to a private address when connecting (DNS rebinding)', async () => {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const send = (sender: WebhookSender, host: string) =>
      sender.send({ url: `http://${host}:${port}/x`, messageId: 'm1', topic: 't', key: null, attempt: 1, body: '{}', headers: {}, secrets: ['whsec_dGVzdA=='], timeoutMs: 2_000 });
    const strict = new WebhookSender();
    const open = new WebhookSender({ allowPrivateUrls: true });
    try {
      // "vm" and "localhost" resolve to 127.0.0.1 on this machine (/etc/hosts).
      const byName = await send(strict, 'vm');
      expect(byName.ok).toBe(false);
      expect(byName.error).toMatch(/resolves to 127\.0\.0\.1, a private address/);
      const byAddress = await send(strict, '127.0.0.1');
      expect(byAddress.error).toMatch(/loopback, private or link-local/);
      expect(hits).toBe(0);
      expect((await send(open, 'vm')).ok).toBe(true);
      expect(hits).toBe(1);
    } finally {
      await strict.close();
      await open.close();
      server.close();
    }
  });
});
