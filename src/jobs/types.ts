// What the bot, the CLI and the tests see of the job system, whichever queue runs underneath.
import type { JobKinds, KindMap, KindOf, Lane, PayloadOf, ResultOf } from './kinds.ts';

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** Why a job did not complete; `message` is written for the person who asked for the job. */
export type FailureCode =
  | 'cancelled'
  | 'timeout'
  | 'oom'
  | 'crashed'
  | 'error'
  | 'invalid'
  | 'unsupported'
  | 'lost'
  | 'interrupted';

export interface JobFailure {
  code: FailureCode;
  message: string;
}

/** What a handler reports while it runs. */
export interface ProgressUpdate {
  /** 0..1 */
  fraction: number;
  /** Short human words: "loading model", "epoch 3/10". */
  stage: string;
  /** An image that shows how the work is going (a fine-tune's latest preview grid). */
  previewPath?: string;
  /** The handler's own estimate of the seconds left, when it knows better than the averages. */
  etaSeconds?: number;
}

export interface JobProgress extends ProgressUpdate {
  /** When the worker sent it (ms since epoch). */
  at: number;
}

/** Who acts on the queue: the Discord user (or operator), where from, and their rights there. */
export interface Actor {
  userId: string;
  /**
   * The server (Discord guild) the request comes from; its jobs carry it as `meta.guildId`, and
   * per-server caps and admin rights apply to it. Absent: an operator (the CLI), bound by no server.
   */
  guildId?: string;
  /** An admin of `guildId` (of that server only); without `guildId`, an operator of the whole bot. */
  isAdmin?: boolean;
}

/** One entry of a job's attempt log: retries, restarts, cancellation requests. */
export interface JobHistoryEntry {
  at: number;
  event: string;
}

/** A job as stored: the same fields for every kind, payload and result as JSON. */
export interface JobRecord {
  id: string;
  kind: string;
  lane: Lane;
  priority: number;
  status: JobStatus;
  payload: unknown;
  userId: string;
  /** Caller context kept with the job, e.g. Discord guild, channel and progress message ids. */
  meta: Record<string, string>;
  createdAt: number;
  /** Start of the latest attempt. */
  startedAt?: number;
  finishedAt?: number;
  /** Attempts started so far. */
  attempt: number;
  maxAttempts: number;
  timeLimitMs: number;
  /** Work units (images, epochs) for ETAs. */
  units: number;
  /** Queued jobs with the same key may run as one batch. */
  batchKey?: string;
  /** The worker running (or that ran) it: "host:pid". */
  worker?: string;
  progress?: JobProgress;
  result?: unknown;
  failure?: JobFailure;
  /** Worker time spent on this job, its share of a batch included. */
  busyMs?: number;
  /** Size of the batch it ran in, when batched. */
  batchSize?: number;
  cancelRequest?: { by: string; at: number };
  history: JobHistoryEntry[];
}

interface JobInfoFields {
  /** 1-based place among the queued jobs of its lane; null once it runs or ends. */
  position: number | null;
  /** Estimated seconds until it ends; null once it ended. */
  etaSeconds: number | null;
}

/** A job with its place in the queue, typed by kind: narrow on `kind` to read payload and result. */
export type JobInfo<KM extends KindMap = JobKinds> = {
  [K in KindOf<KM>]: Omit<JobRecord, 'kind' | 'payload' | 'result'> &
    JobInfoFields & { kind: K; payload: PayloadOf<KM, K>; result?: ResultOf<KM, K> };
}[KindOf<KM>];
export type JobInfoOf<KM extends KindMap, K extends KindOf<KM>> = Extract<JobInfo<KM>, { kind: K }>;

export type JobEventType =
  | 'queued'
  | 'started'
  | 'progress'
  | 'requeued'
  | 'completed'
  | 'failed'
  | 'cancelled';

export interface JobEvent<KM extends KindMap = JobKinds> {
  type: JobEventType;
  job: JobInfo<KM>;
  at: number;
  /** Why it happened, for `requeued` (the worker died) and `failed`. */
  reason?: string;
}

export interface SubmitRequest<KM extends KindMap, K extends KindOf<KM>> {
  kind: K;
  payload: PayloadOf<KM, K>;
  actor: Actor;
  meta?: Record<string, string>;
  /** Lower runs first; defaults to the kind's priority. */
  priority?: number;
  /** Operator overrides of the kind's limits. */
  limits?: { timeLimitMs?: number; maxAttempts?: number };
}

export interface JobFilter {
  status?: JobStatus[];
  userId?: string;
  kind?: string;
  /** Newest first; defaults to 50. */
  limit?: number;
}

export interface LaneStats {
  queued: number;
  running: number;
  workers: number;
}

export interface QueueStats {
  backend: 'embedded' | 'bullmq';
  lanes: Record<Lane, LaneStats>;
  /** Moving average of seconds per unit, by kind. */
  secondsPerUnit: Record<string, number>;
}

/** The job queue the bot uses; `createJobQueue` picks the implementation. */
export interface JobQueue<KM extends KindMap = JobKinds> {
  readonly backend: 'embedded' | 'bullmq';
  /** Applies quotas, cooldowns and the global cap (throws `UserError`s), then queues the job. */
  submit<K extends KindOf<KM>>(request: SubmitRequest<KM, K>): Promise<JobInfoOf<KM, K>>;
  /**
   * Throws the `UserError` `submit` would throw for the actor's quotas and caps, without queueing:
   * for callers that must refuse before costly work (downloading a photo). `submit` checks again.
   */
  admit(kind: KindOf<KM>, actor: Actor): Promise<void>;
  get(id: string): Promise<JobInfo<KM> | undefined>;
  list(filter?: JobFilter): Promise<Array<JobInfo<KM>>>;
  /** Cancels a queued or running job: its owner or an admin. Resolves once the job is cancelled. */
  cancel(id: string, actor: Actor): Promise<JobInfo<KM>>;
  /** Every job event of this queue, also those of jobs that other processes submitted. */
  subscribe(listener: (event: JobEvent<KM>) => void): () => void;
  /** Resolves with the job once it ended (completed, failed or cancelled). */
  waitFor(id: string, options?: { timeoutMs?: number }): Promise<JobInfo<KM>>;
  stats(): Promise<QueueStats>;
  close(): Promise<void>;
}
