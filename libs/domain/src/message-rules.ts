/**
 * Rules on message content that a JSON schema cannot express. Each returns a problem
 * (field and reason) or undefined, so the API can answer 400 naming the field.
 */
export interface FieldProblem {
  field: string;
  reason: string;
}

/** Deeper payloads are refused: they cost stack on every serialisation and no event needs them. */
export const MAX_PAYLOAD_DEPTH = 64;

/** Header names Herald sets itself on every delivery; a producer may not override them. */
const RESERVED_HEADER_PREFIXES = ['herald-', 'webhook-'];
const RESERVED_HEADERS = new Set([
  'host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'keep-alive',
  'upgrade', 'te', 'trailer', 'proxy-authorization', 'proxy-connection', 'expect',
]);

/** Serialised header maps above this are refused (they are stored and sent with every attempt). */
export const MAX_HEADERS_BYTES = 16_384;

/**
 * Refuses payloads nested deeper than MAX_PAYLOAD_DEPTH, numbers beyond a double's range, and
 * integers JSON numbers cannot carry exactly in JavaScript (beyond 2^53): Herald would otherwise
 * store and deliver a different number than the producer sent. Such values must be sent as strings.
 */
export function payloadProblem(payload: unknown): FieldProblem | undefined {
  // Iterative walk: a hostile payload must not be able to overflow the stack here either.
  const stack: Array<[unknown, number]> = [[payload, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number];
    // 1e400 parses to Infinity, which JSON.stringify would store as null.
    if (typeof value === 'number' && !Number.isFinite(value)) {
      return { field: 'payload', reason: 'must not contain numbers beyond ±1.7976931348623157e308 (JSON numbers Herald can carry); send them as strings' };
    }
    if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value)) {
      return { field: 'payload', reason: `must not contain integers beyond ±${Number.MAX_SAFE_INTEGER} (send them as strings): ${value} would not survive unchanged` };
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth > MAX_PAYLOAD_DEPTH) {
      return { field: 'payload', reason: `must not nest objects or arrays deeper than ${MAX_PAYLOAD_DEPTH} levels` };
    }
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
  return undefined;
}

export function headersProblem(headers: Record<string, string> | undefined, field = 'headers'): FieldProblem | undefined {
  if (!headers) return undefined;
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower) || RESERVED_HEADER_PREFIXES.some((p) => lower.startsWith(p))) {
      return { field: `${field}.${name}`, reason: 'is reserved: Herald sets this header itself' };
    }
  }
  const lowered = Object.keys(headers).map((n) => n.toLowerCase());
  if (new Set(lowered).size !== lowered.length) {
    return { field, reason: 'must not repeat a header name in different letter case' };
  }
  if (JSON.stringify(headers).length > MAX_HEADERS_BYTES) {
    return { field, reason: `must not exceed ${MAX_HEADERS_BYTES} bytes in all` };
  }
  return undefined;
}

/** A URL Herald calls (check URL, webhook) must be absolute http(s), name a host, and carry no credentials. */
export function targetUrlProblem(url: string | undefined, field: string): FieldProblem | undefined {
  if (url === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { field, reason: 'must be an absolute URL' };
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return { field, reason: 'must use http or https' };
  if (!parsed.hostname) return { field, reason: 'must name a host' };
  if (parsed.username || parsed.password) {
    return { field, reason: 'must not carry credentials; Herald signs its calls instead' };
  }
  return undefined;
}

export function checkUrlProblem(url: string | undefined): FieldProblem | undefined {
  return targetUrlProblem(url, 'checkUrl');
}
