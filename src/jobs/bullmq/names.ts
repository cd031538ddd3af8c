// Names and connections of the BullMQ queue: one BullMQ queue per lane under a key prefix, plus a
// cancel channel, all derived from one Redis URL.
import type { RedisOptions as IORedisOptions } from 'ioredis';
import { UserError } from '../../errors.ts';
import type { Lane } from '../kinds.ts';
import type { BullWorkerSettings } from '../worker/protocol.ts';

export const DEFAULT_PREFIX = 'facestyle';

export const DEFAULT_BULL_WORKER: Omit<BullWorkerSettings, 'url' | 'prefix'> = {
  lanes: ['short', 'long'],
  lockDurationMs: 30_000,
  stalledIntervalMs: 15_000,
  drainDelaySeconds: 5,
};

export function laneQueueName(lane: Lane): string {
  return `jobs-${lane}`;
}

export function cancelChannel(prefix: string): string {
  return `${prefix}:cancel`;
}

/** Set while a cancellation is pending, so a worker that fetches the job after the message still sees it. */
export function cancelKey(prefix: string, jobId: string): string {
  return `${prefix}:cancel:${jobId}`;
}

export function isRedisUrl(url: string): boolean {
  return /^rediss?:\/\//.test(url);
}

/** ioredis options that BullMQ's connection type accepts too (it does not allow a null retry strategy). */
export type RedisConnectionOptions = Omit<IORedisOptions, 'retryStrategy'> & {
  retryStrategy?: (times: number) => number;
};

/** ioredis options from a redis:// URL; `maxRetriesPerRequest: null` as BullMQ workers require. */
export function redisOptions(url: string): RedisConnectionOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UserError(`invalid queue URL "${url}"`, 'expected redis://[user:password@]host[:port][/db]');
  }
  if (!isRedisUrl(url))
    throw new UserError(`the queue URL must start with redis:// or rediss://, got "${parsed.protocol}"`);
  const db = parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0)
    throw new UserError(`invalid Redis database in queue URL: "${parsed.pathname}"`);
  return {
    host: parsed.hostname || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    db,
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    tls: parsed.protocol === 'rediss:' ? {} : undefined,
    maxRetriesPerRequest: null,
    // Keep reconnecting through a Redis restart, never faster than every 2 s.
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  };
}
