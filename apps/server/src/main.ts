import closeWithGrace from 'close-with-grace';
import { pino } from 'pino';
import { defaultMigrationsDir, migrate } from '@herald/db';
import { buildApp, loggerOptions } from './app';
import { ConfigError, parseConfig, type Config } from './config';

/** Starts Herald: parse config, migrate under a lock, listen; drain and close on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = parseConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`herald: configuration error: ${error.message}`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
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

main().catch((error: unknown) => {
  console.error('herald: failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
