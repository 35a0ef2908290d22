import type { IncomingMessage, ServerResponse } from 'node:http';
import { verifyWebhook, WebhookVerificationError } from '../webhook.verifier';
import { processOnce, type InboxOptions } from './inbox';

/** One verified webhook delivery. */
export interface WebhookEvent {
  /** `webhook-id`: the message id, `<tenant>/<id>` for tenants other than `default`; stable across retries, unique across tenants. */
  id: string;
  /** The `herald-tenant` header (`default` from a Herald without tenants). */
  tenant: string;
  topic: string;
  key: string | null;
  /** `herald-attempt`: 1 for the first attempt. */
  attempt: number;
  payload: unknown;
}

/** Options of {@link createWebhookHandler}. */
export interface WebhookHandlerOptions<Tx> extends InboxOptions<Tx> {
  /**
   * The subscription's `whsec_` secret (both while it is being rotated), or a function read on
   * every request, for secrets that change or are known only after the handler is mounted.
   */
  secret: string | readonly string[] | (() => string | readonly string[]);
  toleranceSeconds?: number;
  /** Called when a message id was already processed (answered 200, nothing runs). */
  onDuplicate?: (event: WebhookEvent) => void;
  /** Largest body accepted (default 1 MiB, Herald's default limit). */
  maxBodyBytes?: number;
}

/**
 * A Node `(req, res)` webhook endpoint that verifies Herald's signature, then runs `work` through
 * the inbox in your transaction. It answers 200 once the effects are committed (or the message was
 * already processed), 401 to a bad signature, and 500 when `work` throws, so Herald retries.
 */
export function createWebhookHandler<Tx>(options: WebhookHandlerOptions<Tx>, work: (tx: Tx, event: WebhookEvent) => Promise<void>): (req: IncomingMessage, res: ServerResponse) => void {
  const limit = options.maxBodyBytes ?? 1_048_576;
  return (req, res) => {
    const send = (code: number, body: object) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > limit) return send(413, { error: 'body too large' });
      const raw = Buffer.concat(chunks);
      let event: WebhookEvent;
      try {
        const { id } = verifyWebhook(typeof options.secret === 'function' ? options.secret() : options.secret, req.headers, raw, { toleranceSeconds: options.toleranceSeconds });
        const header = (name: string) => (Array.isArray(req.headers[name]) ? req.headers[name][0] : req.headers[name]) as string | undefined;
        event = { id, tenant: header('herald-tenant') ?? 'default', topic: header('herald-topic') ?? '', key: header('herald-key') ?? null, attempt: Number(header('herald-attempt') ?? 1), payload: JSON.parse(raw.toString('utf8')) };
      } catch (err) {
        return send(err instanceof WebhookVerificationError ? 401 : 400, { error: (err as Error).message });
      }
      processOnce(options, event.id, (tx) => work(tx, event)).then(
        (outcome) => {
          if (outcome.duplicate) options.onDuplicate?.(event);
          send(200, { duplicate: outcome.duplicate });
        },
        () => send(500, { error: 'processing failed' }),
      );
    });
  };
}
