import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Herald calls only global unicast addresses unless HERALD_ALLOW_PRIVATE_URLS is set: ipaddr.js
 * names every special-purpose range (loopback, private, carrier-grade NAT, link-local — cloud
 * metadata lives at 169.254.169.254 —, multicast, reserved, documentation, unique-local,
 * site-local, 6to4, Teredo, NAT64...) and only what it calls plain `unicast` passes; in IPv6 only
 * inside 2000::/3, so IPv4-compatible forms (::a.b.c.d) and unassigned space are refused too.
 * An IPv4-mapped address (::ffff:a.b.c.d) and the well-known NAT64 prefix (64:ff9b::/96, where
 * DNS64 puts public IPv4 hosts for IPv6-only networks) are judged by the IPv4 address they carry.
 */
const GLOBAL_UNICAST = ipaddr.parseCIDR('2000::/3');
const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96');

export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return ipaddr.IPv4.parse(address).range() !== 'unicast';
  if (family !== 6) return false;
  // ipaddr.js reads "::a.b.c.d" as IPv4-mapped; the WHATWG URL parser writes it in hex first.
  const v6 = ipaddr.IPv6.parse(address.includes('.') ? new URL(`http://[${address}]/`).hostname.slice(1, -1) : address);
  if (v6.isIPv4MappedAddress()) return isPrivateAddress(v6.toIPv4Address().toString());
  if (v6.match(NAT64_WELL_KNOWN)) return isPrivateAddress(ipaddr.fromByteArray(v6.toByteArray().slice(12)).toString());
  return v6.range() !== 'unicast' || !v6.match(GLOBAL_UNICAST);
}

/**
 * Refuses a URL Herald should not call, judged on its text: a literal private address, or a
 * host name that always means this machine. Host names are judged again when connecting.
 */
export function privateUrlProblem(url: string): string | undefined {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  } catch {
    return undefined; // syntax is reported elsewhere
  }
  if (host === 'localhost' || host.endsWith('.localhost') || isPrivateAddress(host)) {
    return 'must not point at a loopback, private, link-local or other non-public address (set HERALD_ALLOW_PRIVATE_URLS=true to allow it)';
  }
  return undefined;
}

export class PrivateAddressError extends Error {
  readonly code = 'EPRIVATEADDRESS';
}

/**
 * A DNS lookup for outgoing connections that refuses private addresses, so a host name that
 * resolves (or is re-pointed, DNS rebinding) to an internal address is refused at connect time.
 */
export const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, '', 4);
    const list = addresses as unknown as LookupAddress[];
    const refused = list.find((a) => isPrivateAddress(a.address));
    if (refused) return callback(new PrivateAddressError(`${hostname} resolves to ${refused.address}, a private address; refused (HERALD_ALLOW_PRIVATE_URLS is off)`), '', 4);
    if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
    const first = list[0];
    if (!first) return callback(new Error(`${hostname} has no address`), '', 4);
    callback(null, first.address, first.family);
  });
};
