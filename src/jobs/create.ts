// Opens the job queue the configuration asks for: BullMQ when a queue URL is set, else embedded.
// The bot calls this once at start; the queue forks its worker process(es) itself.
import { join } from 'node:path';
import { logger } from '../log.ts';
import { ArtifactStore } from '../store/artifacts.ts';
import { BullJobQueue } from './bullmq/queue.ts';
import type { JobSystemConfig } from './config.ts';
import { EmbeddedJobQueue } from './embedded/queue.ts';
import { JobStore } from './job-store.ts';
import { type JobKinds, KIND_SPECS, type KindMap, type KindSpecs, type Lane } from './kinds.ts';
import { DEFAULT_TIMING, type QueueTiming } from './timing.ts';

export { DEFAULT_TIMING, type QueueTiming };

export interface CreateJobQueueOptions<KM extends KindMap> {
  config: JobSystemConfig;
  /** Kind specs; defaults to those of kinds.ts. */
  kinds?: KindSpecs<KM>;
  timing?: Partial<QueueTiming>;
  /** Embedded: batches running at once per lane (each lane runs on its own). */
  laneConcurrency?: Record<Lane, number>;
  /** Caps batch sizes; 1 turns batching off. */
  maxBatch?: number;
  /** Extra environment for worker processes. */
  workerEnv?: NodeJS.ProcessEnv;
  /** Run the cleanup schedule from this process (the bot: yes). */
  maintenance?: boolean;
}

export type LocalJobQueue<KM extends KindMap = JobKinds> = EmbeddedJobQueue<KM> | BullJobQueue<KM>;

export async function createJobQueue<KM extends KindMap = JobKinds>(
  options: CreateJobQueueOptions<KM>,
): Promise<LocalJobQueue<KM>> {
  const { config } = options;
  const timing = { ...DEFAULT_TIMING, ...options.timing };
  const log = logger('jobs');
  const core = {
    store: await JobStore.open(config.storeUrl, config.prefix),
    artifacts: new ArtifactStore(join(config.dataDir, 'artifacts'), log),
    policy: config.policy,
    kinds: options.kinds ?? (KIND_SPECS as unknown as KindSpecs<KM>),
    log,
    maintenance: options.maintenance === false ? undefined : config.maintenance,
  };
  if (config.queueUrl) {
    return BullJobQueue.open(core, {
      url: config.queueUrl,
      prefix: config.prefix,
      dataDir: config.dataDir,
      reconcileIntervalMs: timing.reconcileIntervalMs,
      commandTimeoutMs: timing.commandTimeoutMs,
      spawnWorkers: config.localWorkers,
      worker: {
        handlerModules: config.handlerModules,
        abortGraceMs: timing.abortGraceMs,
        progressIntervalMs: timing.progressIntervalMs,
        maxBatch: options.maxBatch,
        lockDurationMs: timing.lockDurationMs,
        stalledIntervalMs: timing.stalledIntervalMs,
        drainDelaySeconds: timing.drainDelaySeconds,
        restartDelayMs: timing.workerRestartDelayMs,
        env: options.workerEnv,
      },
    });
  }
  return EmbeddedJobQueue.open(core, {
    dataDir: config.dataDir,
    handlerModules: config.handlerModules,
    laneConcurrency: options.laneConcurrency,
    abortGraceMs: timing.abortGraceMs,
    progressIntervalMs: timing.progressIntervalMs,
    maxBatch: options.maxBatch,
    cancelPollMs: timing.cancelPollMs,
    leaseRenewMs: timing.leaseRenewMs,
    hardKillGraceMs: timing.hardKillGraceMs,
    workerRestartDelayMs: timing.workerRestartDelayMs,
    workerEnv: options.workerEnv,
  });
}
