// Errors the queue gives callers (all user-facing, so `UserError`s), and the failure messages a job
// ends with. Failures cross process and Redis boundaries as "code: message" strings.
import { UserError } from '../errors.ts';
import type { FailureCode, JobFailure } from './types.ts';

export type QuotaRule = 'active' | 'server' | 'cooldown' | 'daily';

export class QuotaExceededError extends UserError {
  override name = 'QuotaExceededError';
  constructor(
    readonly rule: QuotaRule,
    message: string,
    hint?: string,
    /** For cooldowns: seconds until the next submission is accepted. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message, hint);
  }
}

export class QueueFullError extends UserError {
  override name = 'QueueFullError';
  constructor(readonly limit: number) {
    super(`the queue is full (${limit} jobs waiting)`, 'try again in a few minutes');
  }
}

export class JobNotFoundError extends UserError {
  override name = 'JobNotFoundError';
  constructor(readonly jobId: string) {
    super(`no job with id ${jobId}`, 'check the id: `/queue` lists your jobs');
  }
}

export class NotAllowedError extends UserError {
  override name = 'NotAllowedError';
}

export class JobAlreadyFinishedError extends UserError {
  override name = 'JobAlreadyFinishedError';
}

export class QueueUnavailableError extends UserError {
  override name = 'QueueUnavailableError';
  constructor(detail: string) {
    super(`the job queue is unavailable (${detail})`, 'try again in a minute; operators: check Redis');
  }
}

export class UnknownKindError extends UserError {
  override name = 'UnknownKindError';
  constructor(kind: string, known: string[]) {
    super(`unknown job kind "${kind}"`, `known kinds: ${known.join(', ')}`);
  }
}

/** An out-of-memory error from TensorFlow.js, WebGPU or the allocator. */
export function isOutOfMemory(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /out of memory|\bOOM\b/i.test(message);
}

export function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 120) return `${seconds} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 120) return `${minutes} min`;
  return `${(minutes / 60).toFixed(1)} h`;
}

export const failures = {
  cancelled: (by: string): JobFailure => ({ code: 'cancelled', message: `cancelled by ${by}` }),
  timeout: (limitMs: number): JobFailure => ({
    code: 'timeout',
    message: `stopped after exceeding its time limit of ${formatDuration(limitMs)}`,
  }),
  oom: (detail: string): JobFailure => ({
    code: 'oom',
    message: `the GPU ran out of memory (${detail}); try fewer images or a smaller model`,
  }),
  crashed: (detail: string, attempts?: number): JobFailure => ({
    code: 'crashed',
    message: `the worker process died while running this job (${detail})${
      attempts ? `; gave up after ${attempts} attempt${attempts === 1 ? '' : 's'}` : ''
    }`,
  }),
  error: (detail: string): JobFailure => ({ code: 'error', message: `the job failed: ${detail}` }),
  invalid: (detail: string): JobFailure => ({ code: 'invalid', message: detail }),
  unsupported: (kind: string): JobFailure => ({
    code: 'unsupported',
    message: `no worker can run "${kind}" jobs (no handler registered for it)`,
  }),
  lost: (): JobFailure => ({ code: 'lost', message: 'the queue lost track of this job' }),
} as const;

const CODES: readonly FailureCode[] = [
  'cancelled',
  'timeout',
  'oom',
  'crashed',
  'error',
  'invalid',
  'unsupported',
  'lost',
  'interrupted',
];

export function encodeFailure(failure: JobFailure): string {
  return `${failure.code}: ${failure.message}`;
}

/** Reads a failure back from its string form; foreign strings (BullMQ's own) become `crashed`/`error`. */
export function decodeFailure(text: string | undefined): JobFailure {
  const raw = text ?? 'unknown reason';
  const match = /^([a-z]+): ([\s\S]*)$/.exec(raw);
  if (match && CODES.includes(match[1] as FailureCode))
    return { code: match[1] as FailureCode, message: match[2] };
  // BullMQ fails a job itself when its worker kept dying under it.
  if (/stalled more than allowable limit/i.test(raw))
    return failures.crashed('it stopped responding too many times');
  return failures.error(raw);
}
