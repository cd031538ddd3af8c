// The job system's public surface. The bot: `createJobQueue(jobConfigFromEnv())`, then the
// `JobQueue` methods and events. Model handlers: `HandlerRegistry` in src/jobs/handlers/index.ts.
export { BUILTIN_HANDLERS, type JobSystemConfig, jobConfigFromEnv } from './config.ts';
export { type CreateJobQueueOptions, createJobQueue, type LocalJobQueue } from './create.ts';
export {
  failures,
  isOutOfMemory,
  JobAlreadyFinishedError,
  JobNotFoundError,
  NotAllowedError,
  QueueFullError,
  QueueUnavailableError,
  QuotaExceededError,
  type QuotaRule,
  UnknownKindError,
} from './errors.ts';
export type {
  BatchContext,
  BatchHandler,
  BatchItem,
  HandlerContext,
  HandlerModule,
  JobHandler,
  WorkerEnvironment,
} from './handlers/registry.ts';
export { HandlerRegistry } from './handlers/registry.ts';
export * from './kinds.ts';
export { DEFAULT_POLICY, type KindPolicy, type QueuePolicy } from './policy.ts';
export { DEFAULT_TIMING, type QueueTiming } from './timing.ts';
export * from './types.ts';
export { type CancelOutcome, type JobView, openJobView } from './view.ts';
export { WarmCache } from './warm-cache.ts';
