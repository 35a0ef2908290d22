import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { trace, TraceFlags } from '@opentelemetry/api';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { contextWithParent, formatTraceParent, parseTraceParent, traceHeaders, withTraceHeaders } from './trace-context';
import { WebhookSender } from './webhook.sender';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const VALID = `00-${TRACE_ID}-${SPAN_ID}-01`;

describe('parseTraceParent', () => {
  it('reads a valid version-00 traceparent and its tracestate', () => {
    const parsed = parseTraceParent(VALID, 'vendor=abc,other=1');
    expect(parsed).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED, isRemote: true });
    expect(parsed?.traceState?.serialize()).toBe('vendor=abc,other=1');
    expect(parseTraceParent(`00-${TRACE_ID}-${SPAN_ID}-00`)?.traceFlags).toBe(TraceFlags.NONE);
  });

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['upper-case hex', VALID.toUpperCase()],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${SPAN_ID}-01`],
    ['all-zero span id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['forbidden version ff', `ff-${TRACE_ID}-${SPAN_ID}-01`],
    ['extra field on version 00', `${VALID}-extra`],
    ['short trace id', `00-${TRACE_ID.slice(1)}-${SPAN_ID}-01`],
    ['garbage', 'not a traceparent'],
  ])('ignores %s (the work starts a trace of its own)', (_what, value) => {
    expect(parseTraceParent(value)).toBeUndefined();
  });

  it('accepts later versions with more fields, as the spec asks', () => {
    expect(parseTraceParent(`01-${TRACE_ID}-${SPAN_ID}-01-future`)?.traceId).toBe(TRACE_ID);
  });

  it('round-trips through formatTraceParent', () => {
    expect(formatTraceParent(parseTraceParent(VALID)!)).toBe(VALID);
    expect(formatTraceParent({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 0 })).toBe(`00-${TRACE_ID}-${SPAN_ID}-00`);
  });
});

describe('traceHeaders', () => {
  it('is empty without a span (tracing off)', () => {
    expect(traceHeaders(undefined)).toEqual({});
  });

  it('points at the span, with its tracestate', () => {
    const span = trace.wrapSpanContext(parseTraceParent(VALID, 'k=v')!);
    expect(traceHeaders(span)).toEqual({ traceparent: VALID, tracestate: 'k=v' });
    expect(trace.getSpanContext(contextWithParent(parseTraceParent(VALID)))?.spanId).toBe(SPAN_ID);
  });
});

describe('a traced webhook', () => {
  it('still verifies with a Standard Webhooks library: trace headers are not part of the signed string', async () => {
    let received: { headers: IncomingHttpHeaders; body: string } | undefined;
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received = { headers: req.headers, body };
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const sender = new WebhookSender({ allowPrivateUrls: true });
    // A test-only signing secret.
    const secret = 'whsec_dGVzdC1vbmx5LXRyYWNlLWNvbnRleHQtc2VjcmV0';
    try {
      const span = trace.wrapSpanContext(parseTraceParent(VALID)!);
      const result = await sender.send({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
        messageId: 'msg-1',
        topic: 't',
        key: null,
        attempt: 1,
        body: '{"a":1}',
        headers: traceHeaders(span),
        secrets: [secret],
        timeoutMs: 2_000,
      });
      expect(result.ok).toBe(true);
      expect(received?.headers.traceparent).toBe(VALID);
      expect(new Webhook(secret).verify(received!.body, received!.headers as Record<string, string>)).toEqual({ a: 1 });
    } finally {
      await sender.close();
      server.close();
    }
  });
});

describe('withTraceHeaders', () => {
  const herald = { traceparent: VALID };

  it('replaces a traceparent and tracestate of any letter case with Herald\'s, keeping every other header', () => {
    const merged = withTraceHeaders({ Traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, TRACESTATE: 'producer=1', 'x-tenant': 't1' }, herald);
    expect(merged).toEqual({ 'x-tenant': 't1', traceparent: VALID });
    // Exactly one trace header name, whatever the case, so a consumer sees one parent.
    expect(Object.keys(merged).filter((n) => n.toLowerCase().startsWith('trace'))).toEqual(['traceparent']);
  });

  it('drops a producer tracestate even when Herald has none to send', () => {
    expect(withTraceHeaders({ tracestate: 'producer=1', traceparent: 'anything' }, herald)).toEqual(herald);
  });

  it('leaves the headers as they are when Herald sends no trace headers (tracing off)', () => {
    const headers = { Traceparent: 'producer-value', tracestate: 'producer=1' };
    expect(withTraceHeaders(headers, {})).toBe(headers);
  });
});
