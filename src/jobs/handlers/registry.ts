// How model code plugs into the worker process: one handler per job kind, registered at worker
// start by handler modules (src/jobs/handlers/index.ts and any `--handlers` module). Handlers run
// only in the worker process, never in the bot.
import type { Logger } from '../../log.ts';
import type { JobKinds, KindMap, KindOf, PayloadOf, ResultOf } from '../kinds.ts';
import type { ProgressUpdate } from '../types.ts';

export interface HandlerContext {
  jobId: string;
  /** Aborted when the job is cancelled, hits its time limit or the worker shuts down. */
  signal: AbortSignal;
  /** Reports progress; cheap to call often (the worker forwards at most a few per second). */
  progress(update: ProgressUpdate): void;
  /** An empty folder for this job's output files, under the data folder. */
  artifactsDir: string;
  log: Logger;
  /**
   * 1 on the first run; higher after the worker died under an earlier attempt. A kind that can
   * continue where an attempt stopped keeps its own state in its output folder (a fine-tune
   * resumes from its run folder's newest snapshot).
   */
  attempt: number;
  maxAttempts: number;
}

export type JobHandler<KM extends KindMap, K extends KindOf<KM>> = (
  payload: PayloadOf<KM, K>,
  ctx: HandlerContext,
) => Promise<ResultOf<KM, K>>;

export interface BatchItem<KM extends KindMap, K extends KindOf<KM>> {
  payload: PayloadOf<KM, K>;
  ctx: HandlerContext;
}

export interface BatchContext {
  /** Aborted once every job of the batch is aborted; a single cancelled job only aborts its own ctx. */
  signal: AbortSignal;
  /** Reports the same progress to every job of the batch. */
  progress(update: ProgressUpdate): void;
  log: Logger;
}

/**
 * Runs several queued jobs of one kind that share a batch key (for `generate`: same checkpoint and
 * psi) in one pass. Returns one entry per item, in order: a result, or an Error that fails only
 * that job.
 */
export type BatchHandler<KM extends KindMap, K extends KindOf<KM>> = (
  items: Array<BatchItem<KM, K>>,
  batch: BatchContext,
) => Promise<Array<ResultOf<KM, K> | Error>>;

export interface BatchRegistration {
  // biome-ignore lint/suspicious/noExplicitAny: kinds are checked at registration, not here
  handler: BatchHandler<any, any>;
  /** Most jobs in one batch. */
  maxBatch: number;
}

/** What handler modules receive besides the registry. */
export interface WorkerEnvironment {
  dataDir: string;
  log: Logger;
}

/** A handler module: `export async function register(registry, env)`. */
export type HandlerModule<KM extends KindMap = JobKinds> = {
  register(registry: HandlerRegistry<KM>, env: WorkerEnvironment): void | Promise<void>;
};

export class HandlerRegistry<KM extends KindMap = JobKinds> {
  // biome-ignore lint/suspicious/noExplicitAny: kinds are checked at registration, not here
  private readonly singles = new Map<string, JobHandler<any, any>>();
  private readonly batches = new Map<string, BatchRegistration>();
  private readonly oomListeners: Array<() => void> = [];

  register<K extends KindOf<KM>>(kind: K, handler: JobHandler<KM, K>): this {
    this.singles.set(kind, handler);
    return this;
  }

  /**
   * Registers a batch handler; it also serves single jobs of that kind unless `register` gave the
   * kind its own single-job handler.
   */
  registerBatch<K extends KindOf<KM>>(
    kind: K,
    handler: BatchHandler<KM, K>,
    options: { maxBatch: number },
  ): this {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) {
      throw new RangeError(`maxBatch must be a positive integer, got ${options.maxBatch}`);
    }
    this.batches.set(kind, { handler, maxBatch: options.maxBatch });
    return this;
  }

  /** Called after a job failed with out-of-memory: drop caches (warm models) to recover. */
  onOutOfMemory(listener: () => void): this {
    this.oomListeners.push(listener);
    return this;
  }

  // biome-ignore lint/suspicious/noExplicitAny: callers pass payloads of the registered kind
  single(kind: string): JobHandler<any, any> | undefined {
    return this.singles.get(kind);
  }

  batch(kind: string): BatchRegistration | undefined {
    return this.batches.get(kind);
  }

  has(kind: string): boolean {
    return this.singles.has(kind) || this.batches.has(kind);
  }

  kinds(): string[] {
    return [...new Set([...this.singles.keys(), ...this.batches.keys()])].sort();
  }

  notifyOutOfMemory(): void {
    for (const listener of this.oomListeners) listener();
  }
}
