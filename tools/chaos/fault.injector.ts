import { Redis } from 'ioredis';
import type { HeraldReplica } from './herald.replica';
import type { PrivateMariaDb, PrivateRabbitMq, PrivateRedis } from '@herald/test-support';

export type ProcessFault = 'kill -9 replica' | 'redis wipe (herald keys)' | 'redis restart' | 'rabbitmq stop_app/start_app' | 'mariadb restart';

export const PROCESS_FAULTS: readonly ProcessFault[] = ['kill -9 replica', 'redis wipe (herald keys)', 'redis restart', 'rabbitmq stop_app/start_app', 'mariadb restart'];

export interface FaultRecord {
  fault: ProcessFault;
  detail: string;
  at: number;
  /** How long the service was away (0 for a wipe). */
  downMs: number;
  /** From the injection until a message published afterwards reached its webhook and queue. */
  recoveryMs: number;
}

export interface FaultTargets {
  replicas: HeraldReplica[];
  mariadb: PrivateMariaDb;
  redis: PrivateRedis;
  rabbit: PrivateRabbitMq;
  queuePrefix: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Deletes every key under Herald's BullMQ prefix (jobs, schedulers, rate-limit counters). */
export async function wipeHeraldKeys(redisUrl: string, prefix: string): Promise<number> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
  try {
    let wiped = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) wiped += await redis.del(...keys);
    } while (cursor !== '0');
    return wiped;
  } finally {
    redis.disconnect();
  }
}

/**
 * Injects one fault and brings the service back. Returns how long it was away and, through
 * `probe`, when Herald delivered again; `probe` gets the replica to publish through when the
 * fault concerned one.
 */
export async function injectFault(
  fault: ProcessFault,
  targets: FaultTargets,
  probe: (via?: HeraldReplica) => Promise<void>,
): Promise<FaultRecord> {
  const at = Date.now();
  let downMs = 0;
  let detail = '';
  let via: HeraldReplica | undefined;
  switch (fault) {
    case 'kill -9 replica': {
      const alive = targets.replicas.filter((r) => r.isAlive);
      via = alive[Math.floor(Math.random() * alive.length)] ?? targets.replicas[0]!;
      detail = via.name;
      await via.kill();
      await sleep(500);
      await via.start();
      downMs = Date.now() - at;
      break;
    }
    case 'redis wipe (herald keys)': {
      detail = `${await wipeHeraldKeys(targets.redis.url, targets.queuePrefix)} keys`;
      break;
    }
    case 'redis restart': {
      await targets.redis.kill();
      await sleep(1_500);
      await targets.redis.start();
      downMs = Date.now() - at;
      break;
    }
    case 'rabbitmq stop_app/start_app': {
      await targets.rabbit.stopApp();
      await sleep(2_000);
      await targets.rabbit.startApp();
      downMs = Date.now() - at;
      break;
    }
    case 'mariadb restart': {
      await targets.mariadb.kill();
      await sleep(1_500);
      await targets.mariadb.start();
      downMs = Date.now() - at;
      detail = 'kill -9, crash recovery on restart';
      break;
    }
  }
  await probe(via);
  return { fault, detail, at, downMs, recoveryMs: Date.now() - at };
}
