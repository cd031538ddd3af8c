// What a BullMQ job carries: the data the worker needs (and enough to rebuild the job's record
// from Redis alone), the return value envelope, and progress messages.
import type { JobProgress, JobRecord } from '../types.ts';

export interface BullJobData {
  kind: string;
  payload: unknown;
  userId: string;
  meta: Record<string, string>;
  units: number;
  batchKey?: string;
  priority: number;
  maxAttempts: number;
  timeLimitMs: number;
  createdAt: number;
  /** Starts that ended in a planned shutdown; they do not count against `maxAttempts`. */
  interruptions?: number;
  /** Attempts made before the job was queued again from the store (Redis had lost it). */
  priorAttempts?: number;
}

export interface BullReturn {
  result: unknown;
  busyMs: number;
  batchSize: number;
}

/** A progress report. */
export type BullProgress = { progress: JobProgress };

export function jobDataOf(record: JobRecord): BullJobData {
  return {
    kind: record.kind,
    payload: record.payload,
    userId: record.userId,
    meta: record.meta,
    units: record.units,
    batchKey: record.batchKey,
    priority: record.priority,
    maxAttempts: record.maxAttempts,
    timeLimitMs: record.timeLimitMs,
    createdAt: record.createdAt,
  };
}

/** Attempts a job really had: starts minus the ones a planned shutdown cut short. */
export function attemptsOf(job: { attemptsStarted: number; data: BullJobData }): number {
  return Math.max(0, job.attemptsStarted - (job.data.interruptions ?? 0)) + (job.data.priorAttempts ?? 0);
}
