import { Agent, request } from 'undici';

export interface ApiAnswer {
  status: number;
  body: unknown;
}

/** Tallies of what the API answered during the run, for the report. */
export interface ApiTally {
  requests: number;
  byStatus: Record<string, number>;
  /** Connection refused/reset, timeouts: the replica was down or cut off. */
  networkErrors: number;
  retries: number;
  /** Operations that never got a definite answer within the retry budget. */
  gaveUp: number;
  /** 5xx answers other than 503 (which a fault explains): each is worth a look. */
  unexpected: Array<{ at: string; request: string; status: number; message: string }>;
}

/** The tallies of several clients (one per producer key) as one. */
export function mergeTallies(tallies: readonly ApiTally[]): ApiTally {
  const merged: ApiTally = { requests: 0, byStatus: {}, networkErrors: 0, retries: 0, gaveUp: 0, unexpected: [] };
  for (const t of tallies) {
    merged.requests += t.requests;
    merged.networkErrors += t.networkErrors;
    merged.retries += t.retries;
    merged.gaveUp += t.gaveUp;
    merged.unexpected.push(...t.unexpected);
    for (const [status, n] of Object.entries(t.byStatus)) merged.byStatus[status] = (merged.byStatus[status] ?? 0) + n;
  }
  return merged;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Calls Herald's API on any of the replicas, the way a careful producer does: a connection
 * error, a 429 or a 5xx is retried (on the next replica, after Retry-After or a short backoff)
 * until a definite answer comes or the budget runs out. Herald's writes are idempotent, so a
 * retried prepare or confirm cannot create a second message.
 */
export class ApiClient {
  readonly tally: ApiTally = { requests: 0, byStatus: {}, networkErrors: 0, retries: 0, gaveUp: 0, unexpected: [] };
  private next = 0;
  private readonly agent = new Agent({ connections: 64, keepAliveTimeout: 4_000, headersTimeout: 15_000, bodyTimeout: 15_000, connect: { timeout: 2_000 } });

  constructor(
    private readonly urls: () => string[],
    private readonly token: string,
  ) {}

  /** One request to one base URL, no retry. Throws on network errors. */
  async once(base: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<ApiAnswer & { retryAfterMs?: number }> {
    this.tally.requests++;
    const res = await request(`${base}${path}`, {
      method,
      dispatcher: this.agent,
      headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await res.body.text();
    const key = String(res.statusCode);
    this.tally.byStatus[key] = (this.tally.byStatus[key] ?? 0) + 1;
    const retryAfter = Number(res.headers['retry-after']);
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (should not happen); kept as text
    }
    if (res.statusCode >= 500 && res.statusCode !== 503 && this.tally.unexpected.length < 20) {
      this.tally.unexpected.push({ at: new Date().toISOString(), request: `${method} ${path}`, status: res.statusCode, message: text.slice(0, 200) });
    }
    return { status: res.statusCode, body: parsed, ...(Number.isFinite(retryAfter) && { retryAfterMs: retryAfter * 1000 }) };
  }

  /**
   * Retries until an answer that is not 429/5xx, for at most `budgetMs`. Returns undefined when
   * the budget runs out: the caller must treat the outcome as unknown.
   */
  async call(method: 'GET' | 'POST', path: string, body?: unknown, budgetMs = 90_000, pinned?: string): Promise<ApiAnswer | undefined> {
    const deadline = Date.now() + budgetMs;
    for (let attempt = 0; ; attempt++) {
      const urls = this.urls();
      const base = pinned ?? urls[this.next++ % urls.length] ?? '';
      let waitMs = Math.min(2_000, 100 * 2 ** Math.min(attempt, 5));
      try {
        const answer = await this.once(base, method, path, body);
        if (answer.status !== 429 && answer.status < 500) return answer;
        if (answer.retryAfterMs !== undefined) waitMs = Math.max(waitMs, Math.min(answer.retryAfterMs, 5_000));
      } catch {
        this.tally.networkErrors++;
      }
      if (Date.now() + waitMs > deadline) {
        this.tally.gaveUp++;
        return undefined;
      }
      this.tally.retries++;
      await sleep(waitMs * (0.5 + Math.random() / 2));
    }
  }

  close = () => this.agent.close();
}
