import { Type } from '@sinclair/typebox';

export const Liveness = Type.Object({
  status: Type.Literal('ok'),
  version: Type.String({ description: 'The Herald release this process runs', examples: ['0.1.0'] }),
});

export const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
  checks: Type.Record(Type.String(), Type.Object({ ok: Type.Boolean(), latencyMs: Type.Number(), error: Type.Optional(Type.String()) }), {
    examples: [{ mysql: { ok: true, latencyMs: 1.2 }, redis: { ok: true, latencyMs: 0.4 } }],
  }),
});
