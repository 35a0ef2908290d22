import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { SpanKind, SpanStatusCode, type Span, type SpanContext, type Tracer } from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { contextWithParent, formatTraceParent, parseTraceParent } from '@herald/delivery';
import type { TracingConfig } from '../config';
import { outageLog } from './outage-log';

/** A message as far as tracing cares: its id and the traceparent stored with it. */
export interface TracedMessage {
  id: string;
  traceParent?: string | null;
}

/**
 * Herald's tracing, behind one small interface so routes and workers never touch the SDK.
 * With tracing off every method is a no-op and `tracer` is undefined: no span is recorded and
 * no trace header is sent anywhere.
 */
export interface Tracing {
  tracer?: Tracer;
  /**
   * The traceparent to store with a message `request` prepares: its own span (started now if
   * it was not yet), so checks and deliveries made later join this trace. Null with tracing off.
   */
  traceParentFor(request: FastifyRequest): string | null;
  /**
   * Puts `request`'s span into the trace of the message it acts on (confirm, cancel, replay). If
   * the caller sent a traceparent of its own, the span continues that one and links the message's.
   */
  joinMessage(request: FastifyRequest, message: TracedMessage): void;
}

declare module 'fastify' {
  interface FastifyInstance {
    tracing: Tracing;
  }
}

interface RequestTrace {
  /** Epoch milliseconds, sub-millisecond precise. */
  startTime: number;
  incoming?: SpanContext;
  span?: Span;
  messageId?: string;
  messageParent?: SpanContext;
}

const header = (request: FastifyRequest, name: string): string | undefined => {
  const value = request.headers[name];
  // Two traceparent headers are invalid (W3C): ignore them rather than guess.
  return typeof value === 'string' ? value : undefined;
};

/** One OTLP export (request and retries) gives up after this long. */
const EXPORT_TIMEOUT_MS = 2_000;
/** Flushing the last spans at shutdown waits at most this long. */
const SHUTDOWN_TIMEOUT_MS = 3_000;

/** `exporter`, telling `on` how each batch went, so failed exports are counted and logged (the SDK drops them silently). */
function countingFailures(exporter: SpanExporter, on: { failed: (err: Error) => void; succeeded: () => void }): SpanExporter {
  return {
    export(spans, done) {
      exporter.export(spans, (result) => {
        if (result.code === SUCCESS) on.succeeded();
        else on.failed(result.error ?? new Error('export failed'));
        done(result);
      });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
}

/** ExportResultCode.SUCCESS (from @opentelemetry/core, which Herald does not depend on directly). */
const SUCCESS = 0;

const OFF: Tracing = { traceParentFor: () => null, joinMessage: () => undefined };

/**
 * The SDK, the OTLP exporter and the semantic conventions, imported only when tracing is on.
 * Tracing is off by default, and loaded for nothing they held a few MiB of heap (code and
 * the conventions' tables); `@opentelemetry/api`, which the libs use, is a no-op without them.
 */
async function loadSdk() {
  const [{ OTLPTraceExporter }, { resourceFromAttributes }, { BasicTracerProvider, BatchSpanProcessor }, semconv] = await Promise.all([
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  return { OTLPTraceExporter, resourceFromAttributes, BasicTracerProvider, BatchSpanProcessor, semconv };
}

/**
 * OpenTelemetry tracing with manual spans, exported over OTLP/HTTP JSON. One SERVER span per
 * API request (continuing the caller's W3C traceparent); the workers add a span per check call
 * and per delivery attempt, parented by the span that stored the message (see libs/queues).
 *
 * A request span is started lazily, when its parent is known: a confirm without a traceparent
 * only learns the message's stored trace after reading it, and the span still gets the
 * request's real start time. The provider is Herald's own, not the process-global one, so
 * several apps (tests) in one process do not share it.
 */
export const tracingPlugin = fp<{ config: TracingConfig | null }>(
  async (app, { config }) => {
    if (!config) {
      app.decorate('tracing', OFF);
      return;
    }
    const { OTLPTraceExporter, resourceFromAttributes, BasicTracerProvider, BatchSpanProcessor, semconv } = await loadSdk();
    const { ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_HTTP_ROUTE, ATTR_SERVICE_NAME } = semconv;
    const exportLog = outageLog(app.log, 'could not export spans to the OTLP endpoint');
    const exporter = countingFailures(new OTLPTraceExporter({ url: config.endpoint, timeoutMillis: EXPORT_TIMEOUT_MS }), {
      failed: (err) => {
        app.metrics.traceExportFailures.inc();
        exportLog.failed(err);
      },
      succeeded: () => exportLog.recovered(),
    });
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName }),
      // Sampling: parent-based, always on for new traces (the SDK's default; OTEL_TRACES_SAMPLER overrides it).
      spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: config.scheduleDelayMs, exportTimeoutMillis: EXPORT_TIMEOUT_MS })],
    });
    const tracer = provider.getTracer('herald');
    const traces = new WeakMap<FastifyRequest, RequestTrace>();

    const start = (request: FastifyRequest, t: RequestTrace): Span => {
      const route = request.routeOptions.url ?? 'unmatched';
      const parent = t.incoming ?? t.messageParent;
      const linked = t.incoming && t.messageParent && t.incoming.traceId !== t.messageParent.traceId ? [{ context: t.messageParent }] : [];
      t.span = tracer.startSpan(
        `${request.method} ${route}`,
        { kind: SpanKind.SERVER, startTime: t.startTime, links: linked, attributes: { [ATTR_HTTP_REQUEST_METHOD]: request.method, [ATTR_HTTP_ROUTE]: route } },
        contextWithParent(parent),
      );
      return t.span;
    };

    app.addHook('onRequest', async (request) => {
      // The API only: probes, metrics and docs would drown the traces that matter.
      if (!request.routeOptions.url?.startsWith('/v1/')) return;
      traces.set(request, {
        startTime: performance.timeOrigin + performance.now(),
        incoming: parseTraceParent(header(request, 'traceparent'), header(request, 'tracestate')),
      });
    });

    app.addHook('onResponse', async (request, reply) => {
      const t = traces.get(request);
      if (!t) return;
      traces.delete(request);
      const span = t.span ?? start(request, t);
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, reply.statusCode);
      if (t.messageId) span.setAttribute('herald.message.id', t.messageId);
      if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    });

    app.decorate('tracing', {
      tracer,
      traceParentFor(request) {
        const t = traces.get(request);
        if (!t) return null;
        return formatTraceParent((t.span ?? start(request, t)).spanContext());
      },
      joinMessage(request, message) {
        const t = traces.get(request);
        if (!t) return;
        t.messageId = message.id;
        t.messageParent = parseTraceParent(message.traceParent);
        // Already started (a prepare retried from another trace): link the message's own trace.
        if (t.span && t.messageParent && t.messageParent.traceId !== t.span.spanContext().traceId) t.span.addLink({ context: t.messageParent });
      },
    } satisfies Tracing);

    // Registered early, so it closes late: spans ended while the workers drain are still sent.
    // Bounded on its own: a collector that accepts connections and never answers must not use up
    // the whole shutdown grace period, or the process is killed before the pools are closed.
    app.addHook('onClose', async () => {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<Error>((resolve) => (timer = setTimeout(() => resolve(new Error(`no answer within ${SHUTDOWN_TIMEOUT_MS} ms`)), SHUTDOWN_TIMEOUT_MS)));
      const failure = await Promise.race([provider.shutdown().then(() => undefined, (err: Error) => err), deadline]);
      clearTimeout(timer);
      if (failure) app.log.warn({ err: { message: failure.message } }, 'could not export the last spans');
    });
  },
  { name: 'herald-tracing', dependencies: ['herald-metrics'] },
);
