import type { FastifyBaseLogger } from 'fastify';

/** How often a dependency that stays down is logged again. */
export const OUTAGE_LOG_INTERVAL_MS = 15_000;

/** Logs an outage without a line per retry: see {@link outageLog}. */
export interface OutageLog {
  /** A failure: logged if it is the first since the last recovery, or the last line is old enough. */
  failed(err: Error): void;
  /** Things work again: one line if a failure was logged since the last recovery. */
  recovered(): void;
}

/**
 * While Redis (say) is down its clients fail on every reconnect attempt, many times a second
 * per connection. This logs the first failure, then at most one line per `intervalMs` (with how
 * many failures it stands for), and one line when it works again.
 */
export function outageLog(log: FastifyBaseLogger, what: string, fields: Record<string, unknown> = {}, intervalMs = OUTAGE_LOG_INTERVAL_MS): OutageLog {
  let down = false;
  let lastLogged = 0;
  let unlogged = 0;
  return {
    failed(err) {
      const now = Date.now();
      if (down && now - lastLogged < intervalMs) {
        unlogged++;
        return;
      }
      log.warn({ ...fields, err: { message: err.message }, ...(down && { failuresSinceLastLine: unlogged + 1 }) }, down ? `${what} (still failing)` : what);
      down = true;
      lastLogged = now;
      unlogged = 0;
    },
    recovered() {
      if (!down) return;
      down = false;
      unlogged = 0;
      log.info(fields, `${what}: recovered`);
    },
  };
}
