// Runs jobs inside the worker process, the same way for both queues: handler lookup, batches,
// cancellation and time limits through AbortSignals, progress throttling, and turning whatever a
// handler throws into a failure a user can read. The process keeps serving after any job error.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isUserError } from '../errors.ts';
import { type Logger, logger } from '../log.ts';
import { failures, internalFailure, isOutOfMemory } from './errors.ts';
import type { BatchContext, HandlerContext, HandlerRegistry } from './handlers/registry.ts';
import type { KindMap } from './kinds.ts';
import type { JobFailure, JobProgress, ProgressUpdate } from './types.ts';

export interface ExecJob {
  id: string;
  kind: string;
  payload: unknown;
  units: number;
  attempt: number;
  maxAttempts: number;
  timeLimitMs: number;
}

export type ExecOutcome =
  | { status: 'completed'; result: unknown; busyMs: number; batchSize: number }
  | { status: 'failed'; failure: JobFailure; busyMs: number }
  /** Stopped because the worker shuts down: the job goes back to the queue. */
  | { status: 'interrupted'; busyMs: number };

export interface ExecSink {
  progress(id: string, progress: JobProgress): void;
  done(id: string, outcome: ExecOutcome): void;
}

export type AbortReason = { code: 'cancelled'; by: string } | { code: 'timeout' } | { code: 'shutdown' };

export interface ExecutorOptions {
  artifactsRoot: string;
  /** How long an aborted handler may take to return before the job is given up as stuck. */
  abortGraceMs?: number;
  /** Least time between two progress reports of one job (stage changes always go through). */
  progressIntervalMs?: number;
  /** Caps every kind's batch size (1 turns batching off, e.g. to measure its gain). */
  maxBatch?: number;
  /**
   * Called when an aborted handler did not return within the grace time, just before its job is
   * reported: the handler may hold the GPU forever, so the process must be replaced.
   */
  onStuck?: (jobId: string) => void;
  log?: Logger;
}

interface Running {
  job: ExecJob;
  controller: AbortController;
  settled: boolean;
  startedAt: number;
  timers: NodeJS.Timeout[];
  sink: ExecSink;
  throttle: ProgressThrottle;
}

/** Forwards progress at most every `intervalMs`, keeping the latest; stage or preview changes go at once. */
class ProgressThrottle {
  private last?: JobProgress;
  private pending?: JobProgress;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly intervalMs: number,
    private readonly send: (p: JobProgress) => void,
  ) {}

  push(update: ProgressUpdate): void {
    const progress: JobProgress = {
      ...update,
      fraction: Math.min(1, Math.max(0, update.fraction)),
      at: Date.now(),
    };
    const urgent =
      !this.last ||
      this.last.stage !== progress.stage ||
      this.last.previewPath !== progress.previewPath ||
      progress.at - this.last.at >= this.intervalMs;
    if (urgent && !this.timer) {
      this.emit(progress);
      return;
    }
    this.pending = progress;
    this.timer ??= setTimeout(
      () => this.flush(),
      Math.max(0, this.intervalMs - (progress.at - (this.last?.at ?? 0))),
    );
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending) this.emit(this.pending);
    this.pending = undefined;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
  }

  private emit(progress: JobProgress): void {
    this.last = progress;
    this.send(progress);
  }
}

function failureFromAbort(reason: AbortReason, job: ExecJob): JobFailure | undefined {
  if (reason.code === 'cancelled') return failures.cancelled(reason.by);
  if (reason.code === 'timeout') return failures.timeout(job.timeLimitMs);
  return undefined;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class JobExecutor<KM extends KindMap = KindMap> {
  private readonly running = new Map<string, Running>();
  private readonly abortGraceMs: number;
  private readonly progressIntervalMs: number;
  private readonly log: Logger;

  constructor(
    private readonly registry: HandlerRegistry<KM>,
    private readonly options: ExecutorOptions,
  ) {
    this.abortGraceMs = options.abortGraceMs ?? 5_000;
    this.progressIntervalMs = options.progressIntervalMs ?? 250;
    this.log = options.log ?? logger('executor');
  }

  runningIds(): string[] {
    return [...this.running.keys()];
  }

  /** Largest batch the registry takes for `kind`; 1 when it has no batch handler. */
  batchLimit(kind: string): number {
    return Math.min(
      this.registry.batch(kind)?.maxBatch ?? 1,
      this.options.maxBatch ?? Number.POSITIVE_INFINITY,
    );
  }

  /** Batchable kinds and their largest batch, as this executor runs them. */
  batchLimits(): Record<string, number> {
    return Object.fromEntries(
      this.registry
        .kinds()
        .map((kind) => [kind, this.batchLimit(kind)])
        .filter(([, n]) => (n as number) > 1),
    );
  }

  /**
   * Runs one job, or several jobs of one kind as a batch; reports each job's outcome to `sink`
   * exactly once and resolves when all are reported.
   */
  async run(jobs: ExecJob[], sink: ExecSink): Promise<void> {
    if (jobs.length === 0) return;
    const kind = jobs[0].kind;
    if (jobs.some((job) => job.kind !== kind)) throw new Error('a batch holds jobs of one kind only');
    const entries = await Promise.all(jobs.map((job) => this.begin(job, sink)));
    try {
      const single = this.registry.single(kind);
      const batch = this.registry.batch(kind);
      if (!single && !batch) {
        for (const entry of entries)
          this.finish(entry, { status: 'failed', failure: failures.unsupported(kind), busyMs: 0 });
      } else if (entries.length === 1 && single) {
        await this.runSingle(entries[0], single);
      } else if (batch) {
        await this.runBatch(entries, batch.handler);
      } else {
        // Several jobs but only a single-job handler: one after the other.
        for (const entry of entries) await this.runSingle(entry, single!);
      }
    } finally {
      for (const entry of entries) this.cleanup(entry);
    }
  }

  /** Aborts a running job; false when this executor is not running it. */
  abort(id: string, reason: AbortReason): boolean {
    const entry = this.running.get(id);
    if (!entry || entry.settled) return false;
    if (!entry.controller.signal.aborted) {
      entry.controller.abort(reason);
      entry.timers.push(
        setTimeout(() => {
          if (entry.settled) return;
          this.log.error('handler ignored abort; giving the job up', { jobId: id, reason: reason.code });
          // Stuck first: whoever feeds this process must stop before it hears the job is done.
          this.options.onStuck?.(id);
          this.finish(entry, this.abortOutcome(entry, reason));
        }, this.abortGraceMs),
      );
    }
    return true;
  }

  abortAll(reason: AbortReason): void {
    for (const id of this.running.keys()) this.abort(id, reason);
  }

  private async begin(job: ExecJob, sink: ExecSink): Promise<Running> {
    const entry: Running = {
      job,
      controller: new AbortController(),
      settled: false,
      startedAt: Date.now(),
      timers: [],
      sink,
      throttle: new ProgressThrottle(this.progressIntervalMs, (p) => {
        if (!entry.settled) sink.progress(job.id, p);
      }),
    };
    this.running.set(job.id, entry);
    if (job.timeLimitMs > 0 && Number.isFinite(job.timeLimitMs)) {
      entry.timers.push(setTimeout(() => this.abort(job.id, { code: 'timeout' }), job.timeLimitMs));
    }
    await mkdir(this.artifactsDir(job.id), { recursive: true });
    return entry;
  }

  private artifactsDir(id: string): string {
    return join(this.options.artifactsRoot, id);
  }

  private context(entry: Running): HandlerContext {
    const { job } = entry;
    return {
      jobId: job.id,
      signal: entry.controller.signal,
      progress: (update) => entry.throttle.push(update),
      artifactsDir: this.artifactsDir(job.id),
      log: logger(`job ${job.id}`),
      attempt: job.attempt,
      maxAttempts: job.maxAttempts,
    };
  }

  private async runSingle(
    entry: Running,
    handler: (payload: unknown, ctx: HandlerContext) => Promise<unknown>,
  ) {
    if (entry.settled) return;
    try {
      const result = await handler(entry.job.payload, this.context(entry));
      this.succeed(entry, result, 1, Date.now() - entry.startedAt);
    } catch (err) {
      this.fail(entry, err);
    }
  }

  private async runBatch(
    entries: Running[],
    // biome-ignore lint/suspicious/noExplicitAny: the registry holds handlers of every kind
    handler: (items: any[], batch: BatchContext) => Promise<unknown[]>,
  ): Promise<void> {
    const live = entries.filter((entry) => !entry.settled);
    if (live.length === 0) return;
    const batchAbort = new AbortController();
    let returned = false;
    const onItemAbort = () => {
      if (batchAbort.signal.aborted || !live.every((entry) => entry.controller.signal.aborted)) return;
      batchAbort.abort(live[0].controller.signal.reason);
      live[0].timers.push(
        setTimeout(() => {
          if (returned) return;
          this.log.error('batch handler ignored abort', { jobs: live.map((entry) => entry.job.id) });
          this.options.onStuck?.(live[0].job.id);
        }, this.abortGraceMs),
      );
    };
    for (const entry of live) {
      const leave = () => {
        // A cancelled job leaves the batch at once; the others keep going.
        if (live.length > 1) this.finishAborted(entry);
        onItemAbort();
      };
      // An abort between the job's start and this point has fired already: honour it now.
      if (entry.controller.signal.aborted) leave();
      else entry.controller.signal.addEventListener('abort', leave);
    }
    const started = Date.now();
    const batch: BatchContext = {
      signal: batchAbort.signal,
      progress: (update) => {
        for (const entry of live) entry.throttle.push(update);
      },
      log: logger(`batch ${live.map((entry) => entry.job.id).join(',')}`),
    };
    let results: unknown[];
    try {
      results = await handler(
        live.map((entry) => ({ payload: entry.job.payload, ctx: this.context(entry) })),
        batch,
      );
      if (!Array.isArray(results) || results.length !== live.length) {
        throw new Error(`the batch handler returned ${results?.length} results for ${live.length} jobs`);
      }
    } catch (err) {
      returned = true;
      if (isOutOfMemory(err) && live.length > 1 && !batchAbort.signal.aborted) {
        // The batch was too big for the GPU: each job alone may still fit.
        this.log.warn('batch ran out of memory; retrying its jobs one by one', { size: live.length });
        this.registry.notifyOutOfMemory();
        for (const entry of live) await this.runBatch([entry], handler);
        return;
      }
      for (const entry of live) this.fail(entry, err);
      return;
    }
    returned = true;
    const totalUnits = live.reduce((sum, entry) => sum + Math.max(entry.job.units, 1), 0);
    const elapsed = Date.now() - started;
    live.forEach((entry, i) => {
      const share = (elapsed * Math.max(entry.job.units, 1)) / totalUnits;
      const result = results[i];
      if (result instanceof Error) this.fail(entry, result);
      else this.succeed(entry, result, live.length, share);
    });
  }

  private abortOutcome(entry: Running, reason: AbortReason): ExecOutcome {
    const busyMs = Date.now() - entry.startedAt;
    const failure = failureFromAbort(reason, entry.job);
    return failure ? { status: 'failed', failure, busyMs } : { status: 'interrupted', busyMs };
  }

  private finishAborted(entry: Running): void {
    this.finish(entry, this.abortOutcome(entry, entry.controller.signal.reason as AbortReason));
  }

  private succeed(entry: Running, result: unknown, batchSize: number, busyMs: number): void {
    const reason = entry.controller.signal.reason as AbortReason | undefined;
    // A cancelled or timed-out job stays so even if the handler finished anyway; a job that
    // finished during shutdown keeps its result.
    if (entry.controller.signal.aborted && reason?.code !== 'shutdown') {
      this.finishAborted(entry);
      return;
    }
    entry.throttle.flush();
    this.finish(entry, { status: 'completed', result, busyMs, batchSize });
  }

  private fail(entry: Running, err: unknown): void {
    const busyMs = Date.now() - entry.startedAt;
    if (entry.controller.signal.aborted) {
      this.finishAborted(entry);
      return;
    }
    let failure: JobFailure;
    const where = { jobId: entry.job.id, kind: entry.job.kind };
    if (isOutOfMemory(err)) {
      // The allocator's own words help operators size batches; members get the advice alone.
      this.log.warn('job ran out of memory', { ...where, error: errorMessage(err) });
      failure = failures.oom();
      this.registry.notifyOutOfMemory();
    } else if (isUserError(err)) {
      failure = failures.invalid(err.message);
    } else {
      failure = internalFailure(this.log, 'job failed with an internal error', err, where);
    }
    this.finish(entry, { status: 'failed', failure, busyMs });
  }

  private finish(entry: Running, outcome: ExecOutcome): void {
    if (entry.settled) return;
    entry.settled = true;
    entry.throttle.stop();
    entry.sink.done(entry.job.id, outcome);
  }

  private cleanup(entry: Running): void {
    for (const timer of entry.timers) clearTimeout(timer);
    entry.throttle.stop();
    if (this.running.get(entry.job.id) === entry) this.running.delete(entry.job.id);
  }
}
