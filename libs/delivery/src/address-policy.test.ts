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
  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '93.184.216.34', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808'])('allows %s', (ip) => expect(isPrivateAddress(ip)).toBe(false));

  // IPv6 forms that carry an internal IPv4 address, or are not global unicast, all passed before.
  it.each([
    ['NAT64 of the metadata address', '64:ff9b::a9fe:a9fe'],
    ['NAT64 written with the IPv4 address', '64:ff9b::169.254.169.254'],
    ['local-use NAT64', '64:ff9b:1::808:808'],
    ['6to4 of 127.0.0.1', '2002:7f00:1::'],
    ['6to4 of a public address', '2002:808:808::1'],
    ['Teredo', '2001:0:4136:e378:8000:63bf:3fff:fdd2'],
    ['IPv4-compatible loopback', '::127.0.0.1'],
    ['IPv4-compatible, in hex', '::7f00:1'],
    ['IPv4-compatible public', '::8.8.8.8'],
    ['IPv4-translated (::ffff:0:a.b.c.d)', '::ffff:0:7f00:1'],
    ['site-local', 'fec0::1'],
    ['unique-local', 'fd12:3456::1'],
    ['documentation', '2001:db8::1'],
    ['discard-only', '100::1'],
    ['outside 2000::/3', '4000::1'],
    ['IPv4 reserved', '240.0.0.1'],
    ['IPv4 benchmarking', '198.18.0.1'],
  ])('refuses %s (%s)', (_what, ip) => expect(isPrivateAddress(ip)).toBe(true));
});

describe('privateUrlProblem', () => {
  it('refuses literal private addresses and localhost names', () => {
    for (const url of [
      'http://127.0.0.1:8080/x', 'http://169.254.169.254/latest/meta-data/', 'http://[::1]/x', 'https://10.0.0.5/hook', 'http://LOCALHOST/x', 'http://api.localhost/x', 'http://[::ffff:7f00:1]/x',
      'http://[64:ff9b::a9fe:a9fe]/', 'http://[2002:7f00:1::]/', 'http://[::127.0.0.1]/', 'http://[::ffff:0:7f00:1]/', 'http://[fec0::1]/',
    ]) {
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
      expect(byAddress.error).toMatch(/loopback, private, link-local or other non-public/);
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
