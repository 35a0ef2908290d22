import { Agent, errors, request } from 'undici';
import { parseRetryAfter, type AttemptResult } from '@herald/domain';
import { privateUrlProblem, publicOnlyLookup } from './address-policy';
import { mergeHeaders } from './header-merge';
import { signatureHeader } from './signature';

export interface WebhookRequest {
  url: string;
  messageId: string;
  topic: string;
  key: string | null;
  /** The message's tenant, sent as herald-tenant. */
  tenant?: string;
  /** 1-based attempt number, sent as herald-attempt. */
  attempt: number;
  /** The message payload as stored JSON text: signed and sent byte for byte. */
  body: string;
  /** The message's headers and the subscription's extra headers (see mergeHeaders). */
  headers: Record<string, string>;
  secrets: readonly string[];
  timeoutMs: number;
  /** How much of the response body to keep (default 1 KiB). */
  responseBytes?: number;
}

export interface WebhookSenderOptions {
  connectTimeoutMs?: number;
  /** Connections kept per origin. */
  connectionsPerOrigin?: number;
  userAgent?: string;
  /** Off by default: private addresses are refused, by name and again at connect time. */
  allowPrivateUrls?: boolean;
}

const EXCERPT_BYTES = 1024;

/**
 * POSTs signed webhooks through one pooled undici Agent. Only a 2xx counts; redirects are not
 * followed (the consumer must give the final URL); 410 Gone is reported so the caller can
 * disable the subscription; Retry-After is passed on.
 */
export class WebhookSender {
  private readonly agent: Agent;
  private readonly userAgent: string;
  private readonly allowPrivateUrls: boolean;

  constructor(options: WebhookSenderOptions = {}) {
    this.allowPrivateUrls = options.allowPrivateUrls ?? false;
    this.agent = new Agent({
      connect: { timeout: options.connectTimeoutMs ?? 5_000, ...(!this.allowPrivateUrls && { lookup: publicOnlyLookup }) },
      connections: options.connectionsPerOrigin ?? 64,
      keepAliveTimeout: 4_000,
    });
    this.userAgent = options.userAgent ?? 'Herald-Webhooks/1';
  }

  async send(req: WebhookRequest): Promise<AttemptResult> {
    const started = performance.now();
    // A literal address never reaches the DNS lookup, so it is judged here.
    const refused = this.allowPrivateUrls ? undefined : privateUrlProblem(req.url);
    if (refused) return { ok: false, durationMs: 0, error: `URL ${refused}` };
    const timestamp = Math.floor(Date.now() / 1000);
    // Herald's own headers win over the message's and the subscription's, in any letter case.
    const headers = mergeHeaders(req.headers, {
      'content-type': 'application/json',
      'user-agent': this.userAgent,
      'webhook-id': req.messageId,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signatureHeader(req.secrets, req.messageId, timestamp, req.body),
      'herald-topic': req.topic,
      'herald-attempt': String(req.attempt),
      ...(req.key !== null && { 'herald-key': req.key }),
      ...(req.tenant !== undefined && { 'herald-tenant': req.tenant }),
    });
    // The whole exchange, connecting included, within the timeout. Not AbortSignal.timeout: its
    // timer stays armed for the full timeout after the answer came (until a full collection
    // frees the signal), about 1 KiB per send that outlived it, at hundreds of sends a second.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DOMException(`no answer within ${req.timeoutMs} ms`, 'TimeoutError')), req.timeoutMs);
    try {
      const res = await request(req.url, {
        method: 'POST',
        headers,
        body: req.body,
        dispatcher: this.agent,
        headersTimeout: req.timeoutMs,
        bodyTimeout: req.timeoutMs,
        signal: deadline.signal,
      });
      const excerpt = await readExcerpt(res.body, req.responseBytes ?? EXCERPT_BYTES);
      const durationMs = performance.now() - started;
      const statusCode = res.statusCode;
      if (statusCode >= 200 && statusCode < 300) return { ok: true, durationMs, statusCode, responseExcerpt: excerpt };
      const retryAfterHeader = res.headers['retry-after'];
      const location = res.headers.location;
      let error = `endpoint answered HTTP ${statusCode}`;
      if (statusCode >= 300 && statusCode < 400) error += `; redirects are not followed${location ? ` (to ${String(location).slice(0, 200)})` : ''}`;
      if (statusCode === 410) error += ' Gone; the subscription was disabled';
      return {
        ok: false,
        durationMs,
        statusCode,
        error,
        responseExcerpt: excerpt,
        retryAfterMs: parseRetryAfter(Array.isArray(retryAfterHeader) ? retryAfterHeader[0] : retryAfterHeader, new Date()),
        gone: statusCode === 410,
      };
    } catch (err) {
      return { ok: false, durationMs: performance.now() - started, error: describeError(err, req.timeoutMs) };
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

async function readExcerpt(body: AsyncIterable<Buffer>, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    // Enough for the excerpt; the rest is not Herald's business (the socket is dropped).
    if (size >= limit) break;
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

function describeError(err: unknown, timeoutMs: number): string {
  if (err instanceof errors.ConnectTimeoutError) return 'connect timeout';
  if (err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError) return `no complete answer within ${timeoutMs} ms`;
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no complete answer within ${timeoutMs} ms`;
  const code = (err as { code?: string; cause?: { code?: string } }).code ?? (err as { cause?: { code?: string } }).cause?.code;
  const message = err instanceof Error ? err.message : String(err);
  return code ? `${code}: ${message}` : message;
}
