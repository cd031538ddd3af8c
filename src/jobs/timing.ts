// How long the job system waits for things. The defaults suit production; tests shorten them.

export interface QueueTiming {
  /** Time a handler gets to return after its abort signal before its worker is restarted. */
  abortGraceMs: number;
  progressIntervalMs: number;
  workerRestartDelayMs: { min: number; max: number };
  /** Embedded: how often CLI cancel requests are read. */
  cancelPollMs: number;
  /** Embedded: owner lease renewal. */
  leaseRenewMs: number;
  /** Embedded: extra time past a job's limit before the owner kills a worker that ignores it. */
  hardKillGraceMs: number;
  /** BullMQ: a job whose worker stopped renewing its lock for this long is retried. */
  lockDurationMs: number;
  stalledIntervalMs: number;
  drainDelaySeconds: number;
  reconcileIntervalMs: number;
  commandTimeoutMs: number;
}

export const DEFAULT_TIMING: QueueTiming = {
  abortGraceMs: 10_000,
  progressIntervalMs: 250,
  workerRestartDelayMs: { min: 200, max: 30_000 },
  cancelPollMs: 1_000,
  leaseRenewMs: 5_000,
  hardKillGraceMs: 10_000,
  lockDurationMs: 30_000,
  stalledIntervalMs: 15_000,
  drainDelaySeconds: 5,
  reconcileIntervalMs: 5_000,
  commandTimeoutMs: 5_000,
};
