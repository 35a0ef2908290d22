import { SpanKind, SpanStatusCode, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { contextWithParent, parseTraceParent } from '@herald/delivery';

/**
 * The slice of a pino logger the processors use. Each processor logs through a child bound to
 * the message (and delivery, subscription or check) it works on, and never logs payloads,
 * headers or secrets.
 */
export interface QueueLog {
  child(bindings: Record<string, unknown>): QueueLog;
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  /** pino's: whether a line at `level` would be written (a caller can skip building it). */
  isLevelEnabled?(level: string): boolean;
}

/**
 * Starts a span for work on a stored message, as a child of the span that stored it (its
 * `traceParent`), so checks and delivery attempts made later, in any process, join the
 * message's trace. Undefined without a tracer: tracing is off and nothing is recorded or sent.
 */
export function startMessageSpan(tracer: Tracer | undefined, name: string, kind: SpanKind, traceParent: string | null | undefined, attributes: Attributes): Span | undefined {
  return tracer?.startSpan(name, { kind, attributes }, contextWithParent(parseTraceParent(traceParent)));
}

/** Ends `span` with the outcome; an error status carries only Herald's own short reason. */
export function endSpan(span: Span | undefined, ok: boolean, attributes: Attributes, error?: string): void {
  if (!span) return;
  span.setAttributes(attributes);
  if (!ok) span.setStatus({ code: SpanStatusCode.ERROR, ...(error && { message: error }) });
  span.end();
}

/** Log fields naming `span`, so a log line leads to its trace; none with tracing off. */
export function traceFields(span: Span | undefined): { traceId?: string; spanId?: string } {
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { traceId, spanId };
}

export { SpanKind };
