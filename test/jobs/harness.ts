// Opens real queues for the shared suite: the embedded one on a temporary SQLite store, or BullMQ
// on a real Redis under a key prefix of its own (removed afterwards). Worker processes are real
// forks loading test/jobs/fixtures/handlers.ts; timings are short so faults resolve in seconds.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { removeQueueKeys } from '../../src/jobs/bullmq/cleanup.ts';
import { redisOptions } from '../../src/jobs/bullmq/names.ts';
import type { JobSystemConfig } from '../../src/jobs/config.ts';
import { createJobQueue, type LocalJobQueue, type QueueTiming } from '../../src/jobs/create.ts';
import type { QueuePolicy } from '../../src/jobs/policy.ts';
import { defaultStoreUrl } from '../../src/store/keyv.ts';
import {
  type MarkPayload,
  type SleepPayload,
  TEST_KIND_SPECS,
  type TestKinds,
} from './fixtures/test-kinds.ts';

export type TestQueue = LocalJobQueue<TestKinds>;

export const TEST_HANDLERS = fileURLToPath(new URL('./fixtures/handlers.ts', import.meta.url));
export const OWNER_SCRIPT = fileURLToPath(new URL('./fixtures/owner.ts', import.meta.url));
export const REDIS_URL = process.env.FACESTYLE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export const FAST_TIMING: Partial<QueueTiming> = {
  abortGraceMs: 1_000,
  progressIntervalMs: 50,
  workerRestartDelayMs: { min: 50, max: 500 },
  cancelPollMs: 200,
  leaseRenewMs: 500,
  hardKillGraceMs: 1_500,
  lockDurationMs: 1_500,
  stalledIntervalMs: 500,
  drainDelaySeconds: 1,
  reconcileIntervalMs: 500,
  commandTimeoutMs: 2_000,
};

export const OPEN_POLICY: QueuePolicy = { maxQueued: 10_000, maxActivePerUser: 10_000, kinds: {} };

export interface OpenOptions {
  policy?: QueuePolicy;
  maxBatch?: number;
  timing?: Partial<QueueTiming>;
  maintenance?: boolean;
}

/** What tests/jobs/fixtures/owner.ts needs to open the same queue in another process. */
export interface OwnerSpec {
  config: JobSystemConfig;
  timing: Partial<QueueTiming>;
  jobs: number;
  /** What it submits; default: a short test.sleep. */
  job?: { kind: 'test.mark'; payload: MarkPayload } | { kind: 'test.sleep'; payload: SleepPayload };
}

export interface QueueHarness {
  readonly backend: 'embedded' | 'bullmq';
  readonly dataDir: string;
  readonly config: JobSystemConfig;
  /** Opens the queue; every call opens the same one (same store, same Redis prefix). */
  open(options?: OpenOptions): Promise<TestQueue>;
  /** Closes every queue this harness opened (a failed test may leave one open). */
  closeAll(): Promise<void>;
  dispose(): Promise<void>;
}

function makeConfig(
  dataDir: string,
  queueUrl: string | undefined,
  prefix: string,
  policy: QueuePolicy,
): JobSystemConfig {
  return {
    dataDir,
    queueUrl,
    storeUrl: defaultStoreUrl(dataDir),
    prefix,
    handlerModules: [TEST_HANDLERS],
    localWorkers: 1,
    policy,
    maintenance: {
      schedule: '17 * * * *',
      artifacts: { maxBytes: 2 ** 30, maxAgeMs: 86_400_000 },
      recordRetentionMs: 86_400_000,
    },
  };
}

export function createHarness(backend: 'embedded' | 'bullmq'): QueueHarness {
  const dataDir = mkdtempSync(join(tmpdir(), `facestyle-${backend}-`));
  const prefix = `fstest-${process.pid}-${Date.now().toString(36)}`;
  const config = makeConfig(dataDir, backend === 'bullmq' ? REDIS_URL : undefined, prefix, OPEN_POLICY);
  const opened = new Set<TestQueue>();
  return {
    backend,
    dataDir,
    config,
    async open(options = {}) {
      const queue = await createJobQueue<TestKinds>({
        config: { ...config, policy: options.policy ?? OPEN_POLICY },
        kinds: TEST_KIND_SPECS,
        timing: { ...FAST_TIMING, ...options.timing },
        maxBatch: options.maxBatch,
        maintenance: options.maintenance ?? false,
      });
      opened.add(queue);
      const close = queue.close.bind(queue);
      queue.close = async () => {
        opened.delete(queue);
        await close();
      };
      await queue.whenWorkersReady(30_000);
      return queue;
    },
    async closeAll() {
      await Promise.allSettled([...opened].map((queue) => queue.close()));
    },
    async dispose() {
      await Promise.allSettled([...opened].map((queue) => queue.close()));
      if (backend === 'bullmq') await removeQueueKeys(REDIS_URL, prefix);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Fails (does not skip) when Redis is down, unless FACESTYLE_SKIP_SERVICES=1 skips the suite. */
export async function assertRedisUp(url: string): Promise<void> {
  const redis = new Redis({
    ...redisOptions(url),
    lazyConnect: true,
    retryStrategy: () => undefined as unknown as number,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(
      `Redis is not reachable at ${url} (${(err as Error).message}); start it, or set FACESTYLE_SKIP_SERVICES=1 to skip`,
    );
  } finally {
    redis.disconnect();
  }
}

export const skipServices = process.env.FACESTYLE_SKIP_SERVICES === '1';

export function until<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const tick = async () => {
      try {
        const value = await check();
        if (value !== undefined && value !== false) return resolve(value as T);
      } catch (err) {
        return reject(err);
      }
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 25);
    };
    void tick();
  });
}
