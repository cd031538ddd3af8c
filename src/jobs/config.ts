// The job system's settings, from the environment, checked with a clear message per bad value.
// One setting picks the queue: FACESTYLE_QUEUE_URL set (redis://...) means BullMQ, unset embedded.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.ts';
import { DEFAULT_ARTIFACT_LIMITS, DEFAULT_CLEANUP_SCHEDULE } from '../store/artifacts.ts';
import { defaultStoreUrl, storeKind } from '../store/keyv.ts';
import { photoRetentionMs } from '../store/toonify-photos.ts';
import { DEFAULT_PREFIX, isRedisUrl } from './bullmq/names.ts';
import { DEFAULT_POLICY, type QueuePolicy } from './policy.ts';
import type { MaintenanceOptions } from './queue-core.ts';

/**
 * The handler module every worker loads. A path, not an import: handlers pull in the model code,
 * which must never load in the bot's process.
 */
export const BUILTIN_HANDLERS = fileURLToPath(new URL('./handlers/index.ts', import.meta.url));

export interface JobSystemConfig {
  dataDir: string;
  /** redis:// URL of the BullMQ queue; absent: the embedded queue. */
  queueUrl?: string;
  /** keyv URL of job records: sqlite:// (default, in the data folder), redis:// or postgres://. */
  storeUrl: string;
  /** Redis key prefix of the BullMQ queue, and namespace of the records in the store. */
  prefix: string;
  /** Modules the worker loads its handlers from. */
  handlerModules: string[];
  /** Worker processes the bot forks with a BullMQ queue (0 when they run on other machines). */
  localWorkers: number;
  policy: QueuePolicy;
  maintenance: MaintenanceOptions;
}

type Env = Record<string, string | undefined>;

function number(env: Env, name: string, fallback: number, { min = 0, integer = true } = {}): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new UserError(
      `${name} must be ${integer ? 'an integer' : 'a number'} of at least ${min}, got "${raw}"`,
    );
  }
  return value;
}

function queuePolicy(env: Env): QueuePolicy {
  const maxQueued = number(env, 'FACESTYLE_MAX_QUEUED', DEFAULT_POLICY.maxQueued, { min: 1 });
  return {
    ...DEFAULT_POLICY,
    maxQueued,
    maxActivePerUser: number(env, 'FACESTYLE_MAX_ACTIVE_PER_USER', DEFAULT_POLICY.maxActivePerUser, {
      min: 1,
    }),
    // A server gets at most a quarter of the queue unless the operator says otherwise.
    maxActivePerServer: number(
      env,
      'FACESTYLE_MAX_ACTIVE_PER_SERVER',
      Math.min(DEFAULT_POLICY.maxActivePerServer ?? maxQueued, Math.max(1, Math.ceil(maxQueued / 4))),
      { min: 1 },
    ),
  };
}

export function jobConfigFromEnv(env: Env = process.env): JobSystemConfig {
  const dataDir = resolve(env.FACESTYLE_DATA_DIR || 'data');
  const queueUrl = env.FACESTYLE_QUEUE_URL || undefined;
  if (queueUrl && !isRedisUrl(queueUrl)) {
    throw new UserError(
      `FACESTYLE_QUEUE_URL must be a redis:// URL, got "${queueUrl}"`,
      'leave it unset for the embedded queue',
    );
  }
  const storeUrl = env.FACESTYLE_STORE_URL || defaultStoreUrl(dataDir);
  storeKind(storeUrl);
  const extraHandlers = (env.FACESTYLE_WORKER_HANDLERS ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => resolve(entry));
  const schedule = env.FACESTYLE_CLEANUP_CRON || DEFAULT_CLEANUP_SCHEDULE;
  // Read by the worker's handlers, where a bad value would only crash-loop the worker: refused here,
  // when the bot or `facestyle worker` starts.
  photoRetentionMs(env);
  return {
    dataDir,
    queueUrl,
    storeUrl,
    prefix: env.FACESTYLE_QUEUE_PREFIX || DEFAULT_PREFIX,
    handlerModules: [BUILTIN_HANDLERS, ...extraHandlers],
    localWorkers: number(env, 'FACESTYLE_LOCAL_WORKERS', 1),
    policy: queuePolicy(env),
    maintenance: {
      schedule,
      artifacts: {
        maxBytes:
          number(env, 'FACESTYLE_ARTIFACTS_MAX_GB', DEFAULT_ARTIFACT_LIMITS.maxBytes / 2 ** 30, {
            integer: false,
          }) *
          2 ** 30,
        maxAgeMs:
          number(env, 'FACESTYLE_ARTIFACTS_MAX_AGE_DAYS', DEFAULT_ARTIFACT_LIMITS.maxAgeMs / 86_400_000, {
            integer: false,
          }) * 86_400_000,
      },
      recordRetentionMs: number(env, 'FACESTYLE_JOB_RETENTION_DAYS', 90, { integer: false }) * 86_400_000,
    },
  };
}
