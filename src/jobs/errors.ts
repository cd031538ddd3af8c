// Errors the queue gives callers (all user-facing, so `UserError`s), and the failure messages a job
// ends with. Failures cross process and Redis boundaries as "code: message" strings. A failure's
// message is shown to members: internal errors (bugs, library and system errors) never go in it,
// only a log reference; their text goes to the log under that reference.
import { randomBytes } from 'node:crypto';
import { UserError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { plural } from '../text.ts';
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
  oom: (): JobFailure => ({
    code: 'oom',
    message: 'the GPU ran out of memory; try fewer images or a smaller model',
  }),
  crashed: (detail: string, attempts?: number): JobFailure => ({
    code: 'crashed',
    message: `the worker process died while running this job (${detail})${
      attempts ? `; gave up after ${plural(attempts, 'attempt')}` : ''
    }`,
  }),
  /** An internal error: members see the reference, operators find the error under it in the log. */
  internal: (reference: string): JobFailure => ({
    code: 'error',
    message: `an internal error stopped the job (log reference ${reference})`,
  }),
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

/** A short reference that ties what a member sees to the log line with the details. */
export function logReference(): string {
  return randomBytes(4).toString('hex');
}

/**
 * Logs an internal error with its stack under a new reference and returns the failure members see.
 */
export function internalFailure(
  log: Logger,
  what: string,
  err: unknown,
  fields: Record<string, unknown> = {},
) {
  const reference = logReference();
  log.error(what, {
    ...fields,
    reference,
    error: err instanceof Error ? err.message : String(err),
    stack: err instanceof Error ? err.stack : undefined,
  });
  return failures.internal(reference);
}

/**
 * Reads a failure back from its string form. Foreign strings (BullMQ's or Redis's own) are internal
 * errors: logged (with `log`) under a reference, never passed on.
 */
export function decodeFailure(text: string | undefined, log?: Logger, jobId?: string): JobFailure {
  const raw = text ?? 'unknown reason';
  const match = /^([a-z]+): ([\s\S]*)$/.exec(raw);
  if (match && CODES.includes(match[1] as FailureCode))
    return { code: match[1] as FailureCode, message: match[2] };
  // BullMQ fails a job itself when its worker kept dying under it.
  if (/stalled more than allowable limit/i.test(raw))
    return failures.crashed('it stopped responding too many times');
  const reference = logReference();
  log?.error('a job failed with a foreign error', { jobId, reference, error: raw });
  return failures.internal(reference);
}
