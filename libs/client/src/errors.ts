import type { HeraldErrorBody } from './types';

/** A non-2xx answer from Herald, with the service's `{ statusCode, error, message, field? }`. */
export class HeraldApiError extends Error {
  override readonly name = 'HeraldApiError';

  constructor(
    readonly status: number,
    readonly body: HeraldErrorBody | undefined,
    readonly operation: string,
  ) {
    super(`${operation}: HTTP ${status}${body?.message ? ` ${body.message}` : ''}`);
  }
}

/** Herald could not be reached (or did not answer in time) after every retry. */
export class HeraldNetworkError extends Error {
  override readonly name = 'HeraldNetworkError';

  constructor(
    readonly operation: string,
    readonly attempts: number,
    options: { cause: unknown },
  ) {
    super(`${operation}: Herald unreachable after ${attempts} attempt(s): ${describe(options.cause)}`, options);
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  }
  return String(err);
}
