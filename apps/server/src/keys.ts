import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DEFAULT_TENANT, TENANT_NAME, TOPIC_PATTERN_GRAMMAR } from '@herald/domain';
import { CHECK_SECRET, KEY_NAME, MIN_TOKEN_LENGTH, type ApiKey, type Role } from './config';

/** Who a request's key says the caller is. */
export interface Caller {
  name: string;
  role: Role;
  /** A producer's tenant, or the tenant an admin's own prepares belong to (`default` unless its key names one). */
  tenant: string;
  /** Topic patterns a producer may prepare and publish on; undefined: any topic. */
  topics?: readonly string[];
}

interface KeyEntry extends Caller {
  digest: Buffer;
  checkSecret?: string;
}

export interface KeyLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** How often the keys file is read to see whether it changed (a removed key stops working within 10 s). */
export const KEYS_FILE_POLL_MS = 2_000;

/** A bearer token's SHA-256: what keys are compared by, and (its first half) what names its rate-limit bucket. */
export const tokenDigest = (token: string) => createHash('sha256').update(token).digest();
const digest = tokenDigest;
const ROLES: readonly Role[] = ['admin', 'viewer', 'producer'];
const FILE_FIELDS = new Set(['name', 'role', 'tenant', 'topics', 'token', 'tokenSha256', 'checkSecret']);
const topicPattern = new RegExp(TOPIC_PATTERN_GRAMMAR);

/** A keys file Herald cannot use; the message names the entry and field, never a token or secret. */
export class KeysFileError extends Error {
  override readonly name = 'KeysFileError';
}

/**
 * The API keys: those of HERALD_API_KEYS and those of HERALD_API_KEYS_FILE. The file is read
 * again whenever its content changes (polled by hash, which sees in-place writes and symlink
 * swaps alike); a file that cannot be used is logged and the last good keys stay.
 */
export class KeyRing {
  private inline: KeyEntry[];
  private fromFile: KeyEntry[] = [];
  private fileHash?: string;
  private failedHash?: string;
  private timer?: NodeJS.Timeout;
  private reading?: Promise<void>;

  constructor(
    keys: readonly ApiKey[],
    private readonly file: string | null,
    private readonly log?: KeyLog,
    private readonly pollMs = KEYS_FILE_POLL_MS,
  ) {
    this.inline = keys.map((k) => ({ name: k.name, role: k.role, tenant: k.tenant, digest: digest(k.token) }));
  }

  /** Reads the file once (its errors are thrown: a process does not start without its keys), then polls it. */
  async start(): Promise<void> {
    if (!this.file) return;
    const text = await readFile(this.file, 'utf8');
    this.fromFile = parseKeysFile(text, this.inline);
    this.fileHash = hash(text);
    this.timer = setInterval(() => {
      this.reading ??= this.reload().finally(() => (this.reading = undefined));
    }, this.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.reading;
  }

  /** The key whose token this is; every key is compared, in constant time, whichever matches. */
  match(token: string): Caller | undefined {
    return this.matchDigest(digest(token));
  }

  /** `match` for a token whose digest the caller already has. */
  matchDigest(presented: Buffer): Caller | undefined {
    let found: KeyEntry | undefined;
    for (const key of this.inline) if (timingSafeEqual(presented, key.digest)) found = key;
    for (const key of this.fromFile) if (timingSafeEqual(presented, key.digest)) found = key;
    return found && { name: found.name, role: found.role, tenant: found.tenant, ...(found.topics && { topics: found.topics }) };
  }

  /** The tenants the keys name now (producers', and admins' own), `default` always among them. */
  tenants(): Set<string> {
    return new Set([DEFAULT_TENANT, ...this.inline.map((k) => k.tenant), ...this.fromFile.map((k) => k.tenant)]);
  }

  /** The secret a tenant's check calls are signed with, if one of its keys sets one. */
  checkSecretFor(tenant: string): string | undefined {
    return this.fromFile.find((k) => k.tenant === tenant && k.checkSecret)?.checkSecret;
  }

  private async reload(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file as string, 'utf8');
    } catch (error) {
      // Mid-swap (the link briefly gone) or removed: keep the keys, say so once per cause.
      const cause = `unreadable:${(error as NodeJS.ErrnoException).code ?? 'error'}`;
      if (this.failedHash !== cause) this.log?.error({ file: this.file, code: (error as NodeJS.ErrnoException).code }, 'cannot read the API keys file; the last good keys stay in use');
      this.failedHash = cause;
      return;
    }
    const h = hash(text);
    if (h === this.fileHash || h === this.failedHash) return;
    try {
      this.fromFile = parseKeysFile(text, this.inline);
      this.fileHash = h;
      this.failedHash = undefined;
      this.log?.info({ file: this.file, keys: this.fromFile.length }, 'API keys file reloaded');
    } catch (error) {
      this.failedHash = h;
      this.log?.error({ file: this.file, reason: (error as Error).message }, 'the API keys file is not valid; the last good keys stay in use');
    }
  }
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Parses and checks a keys file: every entry whole, names and tokens unique, one check secret per tenant. */
export function parseKeysFile(text: string, inline: ReadonlyArray<{ digest: Buffer }> = []): KeyEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new KeysFileError(`not JSON: ${(error as Error).message}`);
  }
  const list = (doc as { keys?: unknown } | null)?.keys;
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || !Array.isArray(list)) throw new KeysFileError('must be an object { "keys": [ … ] }');
  const entries = list.map((raw, i) => fileEntry(raw, i));
  const names = entries.map((k) => k.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new KeysFileError(`the name "${dup}" is used twice`);
  const digests = new Set([...entries, ...inline].map((k) => k.digest.toString('hex')));
  if (digests.size !== entries.length + inline.length) throw new KeysFileError('two keys share one token');
  const secrets = new Map<string, string>();
  for (const k of entries) {
    if (!k.checkSecret) continue;
    const other = secrets.get(k.tenant);
    if (other !== undefined && other !== k.checkSecret) throw new KeysFileError(`tenant "${k.tenant}" has two different checkSecret values`);
    secrets.set(k.tenant, k.checkSecret);
  }
  return entries;
}

function fileEntry(raw: unknown, i: number): KeyEntry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new KeysFileError(`keys[${i}] must be an object`);
  const e = raw as Record<string, unknown>;
  const where = `keys[${i}]${typeof e.name === 'string' ? ` ("${e.name.slice(0, 64)}")` : ''}`;
  const unknown = Object.keys(e).find((f) => !FILE_FIELDS.has(f));
  if (unknown) throw new KeysFileError(`${where}: unknown field "${unknown.slice(0, 40)}"`);
  if (typeof e.name !== 'string' || !KEY_NAME.test(e.name)) throw new KeysFileError(`${where}: name must be 1–64 characters of A-Z a-z 0-9 _ . -`);
  if (typeof e.role !== 'string' || !ROLES.includes(e.role as Role)) throw new KeysFileError(`${where}: role must be admin, viewer or producer`);
  const role = e.role as Role;
  if (e.tenant !== undefined && (typeof e.tenant !== 'string' || !TENANT_NAME.test(e.tenant))) throw new KeysFileError(`${where}: tenant must be 1–64 characters of a-z 0-9 _ -`);
  if (role === 'producer' && e.tenant === undefined) throw new KeysFileError(`${where}: a producer key needs a tenant`);
  if (e.topics !== undefined && (!Array.isArray(e.topics) || e.topics.length === 0 || !e.topics.every((t) => typeof t === 'string' && t.length <= 200 && topicPattern.test(t)))) {
    throw new KeysFileError(`${where}: topics must be a non-empty list of topic patterns (words, * and # separated by dots)`);
  }
  if (e.topics !== undefined && role !== 'producer') throw new KeysFileError(`${where}: only producer keys take topics`);
  if ((e.token === undefined) === (e.tokenSha256 === undefined)) throw new KeysFileError(`${where}: give exactly one of token and tokenSha256`);
  if (e.token !== undefined && (typeof e.token !== 'string' || e.token.length < MIN_TOKEN_LENGTH || /\s/.test(e.token))) {
    throw new KeysFileError(`${where}: token must be at least ${MIN_TOKEN_LENGTH} characters without whitespace`);
  }
  if (e.tokenSha256 !== undefined && (typeof e.tokenSha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(e.tokenSha256))) throw new KeysFileError(`${where}: tokenSha256 must be 64 hex digits`);
  if (e.checkSecret !== undefined && (typeof e.checkSecret !== 'string' || !CHECK_SECRET.test(e.checkSecret))) throw new KeysFileError(`${where}: checkSecret must be a whsec_ secret of at least 24 random bytes in base64`);
  return {
    name: e.name,
    role,
    tenant: (e.tenant as string | undefined) ?? DEFAULT_TENANT,
    ...(e.topics !== undefined && { topics: e.topics as string[] }),
    digest: typeof e.token === 'string' ? digest(e.token) : Buffer.from(e.tokenSha256 as string, 'hex'),
    ...(typeof e.checkSecret === 'string' && { checkSecret: e.checkSecret }),
  };
}
