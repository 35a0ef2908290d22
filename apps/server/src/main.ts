import closeWithGrace from 'close-with-grace';
import { pino } from 'pino';
import { defaultMigrationsDir, migrate } from '@herald/db';
import { buildApp, loggerOptions } from './app';
import { ConfigError, parseConfig, parseMigrationConfig } from './config';

/** Starts Herald: parse config, migrate under a lock, listen; drain and close on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  const config = configOrExit(() => parseConfig(process.env));
  const log = pino(loggerOptions(config));
  const migration = await migrate({ url: config.databaseUrl }, defaultMigrationsDir());
  log.info({ applied: migration.applied, alreadyApplied: migration.alreadyApplied.length }, 'database migrated');

  const app = await buildApp(config);
  closeWithGrace({ delay: config.shutdownTimeoutMs, logger: app.log }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an unexpected error');
    else app.log.info({ signal }, 'shutting down: no new requests, draining in-flight ones');
    await app.close();
    app.log.info('shutdown complete');
  });
  await app.listen({ port: config.port, host: config.host });
}

/**
 * `main.js migrate`: applies pending migrations and exits, for a Kubernetes Job or init
 * container that runs before the serving pods. Same lock as start-up, so it is safe beside them.
 */
async function migrateOnly(): Promise<void> {
  const config = configOrExit(() => parseMigrationConfig(process.env));
  const log = pino({ level: config.logLevel });
  const migration = await migrate({ url: config.databaseUrl }, defaultMigrationsDir());
  log.info({ applied: migration.applied, alreadyApplied: migration.alreadyApplied.length }, 'database migrated');
}

/** A connection refused on a dual-stack host is an AggregateError with an empty message. */
function describe(error: unknown): string {
  if (error instanceof AggregateError && !error.message) return error.errors.map(describe).join('; ');
  if (error instanceof Error) return error.message || String((error as { code?: unknown }).code ?? error.name);
  return String(error);
}

function configOrExit<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`herald: configuration error: ${error.message}`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
}

const command = process.argv[2];
if (command === 'migrate') {
  migrateOnly().catch((error: unknown) => {
    console.error(`herald: migration failed: ${describe(error)}`);
    process.exit(1);
  });
} else if (command === undefined) {
  main().catch((error: unknown) => {
    console.error('herald: failed to start:', error instanceof Error ? error.message : error);
    process.exit(1);
  });
} else {
  console.error(`herald: unknown command "${command}"; run without arguments to serve, or with "migrate" to apply migrations and exit`);
  process.exit(64); // EX_USAGE
}
