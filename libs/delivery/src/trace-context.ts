import { createTraceState, isSpanContextValid, ROOT_CONTEXT, trace, type Context, type Span, type SpanContext } from '@opentelemetry/api';

// https://www.w3.org/TR/trace-context/#traceparent-header: version-traceid-parentid-flags, lower-case hex.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** W3C allows 512 characters of tracestate; longer values are dropped rather than cut mid-entry. */
const TRACESTATE_MAX = 512;

/**
 * Parses a W3C `traceparent` (and optional `tracestate`) into a remote span context, or
 * undefined when it is absent or invalid (an invalid one is ignored, as the spec asks: the work
 * then starts a trace of its own). Only `@opentelemetry/api` is used, so this costs nothing and
 * needs no SDK.
 */
export function parseTraceParent(traceparent: string | null | undefined, tracestate?: string | null): SpanContext | undefined {
  const match = traceparent ? TRACEPARENT.exec(traceparent.trim()) : null;
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  // Version ff is forbidden; version 00 has exactly four fields (later versions may add some).
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  const state = tracestate?.trim();
  const spanContext: SpanContext = {
    traceId,
    spanId,
    traceFlags: parseInt(flags, 16),
    isRemote: true,
    ...(state && state.length <= TRACESTATE_MAX && { traceState: createTraceState(state) }),
  };
  return isSpanContextValid(spanContext) ? spanContext : undefined;
}

/** The `traceparent` value (version 00) naming `spanContext` as the parent. */
export function formatTraceParent(spanContext: SpanContext): string {
  return `00-${spanContext.traceId}-${spanContext.spanId}-${(spanContext.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** A context whose parent is `parent` (e.g. a message's stored traceparent), or the root context for a new trace. */
export function contextWithParent(parent: SpanContext | undefined): Context {
  return parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT;
}

/**
 * The `traceparent` (and `tracestate`, if any) headers pointing at `span`, so the callee (a
 * webhook consumer, a producer's check endpoint, an AMQP consumer) continues the trace with
 * `span` as its parent. Empty without a span, i.e. with tracing off. These headers are not part
 * of the Standard Webhooks signature (`id.timestamp.body`), so adding them never breaks one.
 */
export function traceHeaders(span: Span | undefined): Record<string, string> {
  if (!span) return {};
  const spanContext = span.spanContext();
  if (!isSpanContextValid(spanContext)) return {};
  const state = spanContext.traceState?.serialize();
  return { traceparent: formatTraceParent(spanContext), ...(state && { tracestate: state }) };
}

const TRACE_HEADER_NAMES = new Set(['traceparent', 'tracestate']);

/**
 * `headers` with Herald's `trace` headers set. When there are any, a `traceparent` or
 * `tracestate` already in `headers` (a producer's, in any letter case) is removed first: HTTP
 * and AMQP header names are case-insensitive to consumers, so `Traceparent` next to Herald's
 * `traceparent` would be two parents, and a producer's `tracestate` belongs to another span.
 * Without trace headers (tracing off) `headers` are returned as they are.
 */
export function withTraceHeaders(headers: Record<string, string>, trace: Record<string, string>): Record<string, string> {
  if (Object.keys(trace).length === 0) return headers;
  const kept = Object.entries(headers).filter(([name]) => !TRACE_HEADER_NAMES.has(name.toLowerCase()));
  return { ...Object.fromEntries(kept), ...trace };
}
