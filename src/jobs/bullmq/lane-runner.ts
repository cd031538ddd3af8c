// The worker side of the BullMQ queue: one BullMQ Worker per lane, fetching jobs by hand (so that
// queued `generate` jobs with the same batch key can be taken together), renewing their locks, and
// listening for cancellations on a Redis channel. A worker that dies leaves its jobs locked until
// the lock expires; BullMQ's stalled check then puts them back, and the next start counts as an
// attempt.
import { setTimeout as sleep } from 'node:timers/promises';
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from '../../log.ts';
import { encodeFailure, failures } from '../errors.ts';
import type { ExecJob, ExecOutcome, JobExecutor } from '../executor.ts';
import type { Lane } from '../kinds.ts';
import type { BullWorkerSettings } from '../worker/protocol.ts';
import { cancelChannel, cancelKey, laneQueueName, redisOptions } from './names.ts';
import { attemptsOf, type BullJobData, type BullProgress, type BullReturn } from './wire.ts';

type BullJob = Job<BullJobData, BullReturn>;

export interface BullServeOptions extends BullWorkerSettings {
  workerId: string;
  abortGraceMs: number;
  log: Logger;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Errors that retrying cannot fix: the job is no longer ours (lock lost, job gone). */
function isFinalRedisError(err: unknown): boolean {
  return /missing lock|missing key|not in the active state|lock mismatch/i.test(errorText(err));
}

/**
 * Retries a Redis write through an outage (a Redis restart): 8 tries, or for as long as
 * `keepTrying` says (a job's outcome: until it is stored, the job is not acknowledged).
 */
async function persistently<T>(
  what: string,
  log: Logger,
  write: () => Promise<T>,
  keepTrying: () => boolean = () => false,
): Promise<T | undefined> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (isFinalRedisError(err) || (attempt >= 8 && !keepTrying())) {
        log.warn(`could not ${what}`, { error: errorText(err) });
        return undefined;
      }
      await sleep(Math.min(250 * 2 ** attempt, 4_000));
    }
  }
}

class LaneRunner {
  private worker?: Worker<BullJobData, BullReturn>;
  /** Jobs this runner holds the lock of, with their lock tokens. */
  private readonly held = new Map<string, { job: BullJob; token: string }>();
  /** Jobs whose outcome is being written: their lock is renewed, but they have nothing left to stop. */
  private readonly acknowledging = new Set<string>();
  /** A job fetched while filling a batch that did not fit it; runs next. */
  private pending?: BullJob;
  private stopping = false;
  private loop?: Promise<void>;
  private renewTimer?: NodeJS.Timeout;
  private tokenSeq = 0;

  constructor(
    private readonly lane: Lane,
    private readonly executor: JobExecutor,
    private readonly options: BullServeOptions,
    private readonly redis: Redis,
  ) {}

  async start(): Promise<void> {
    const { options } = this;
    this.worker = new Worker<BullJobData, BullReturn>(laneQueueName(this.lane), null, {
      connection: redisOptions(options.url),
      prefix: options.prefix,
      autorun: false,
      name: `${options.workerId}:${this.lane}`,
      lockDuration: options.lockDurationMs,
      stalledInterval: options.stalledIntervalMs,
      // Attempts are counted by us (attemptsStarted), with the kind's own limit.
      maxStalledCount: 1_000,
      drainDelay: options.drainDelaySeconds,
    });
    // While Redis is down every reconnection attempt fails: say so once in a while, not each time.
    let lastWarning = 0;
    this.worker.on('error', (err) => {
      if (Date.now() - lastWarning < 10_000) return;
      lastWarning = Date.now();
      options.log.warn('bullmq worker error', { lane: this.lane, error: err.message });
    });
    await this.worker.waitUntilReady();
    void this.worker.startStalledCheckTimer();
    this.renewTimer = setInterval(() => void this.renewLocks(), Math.max(100, options.lockDurationMs / 3));
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.executor.abortAll({ code: 'shutdown' });
    // The loop hands its jobs back before it ends (a waiting fetch returns within the drain
    // delay); closing the worker earlier would cut the connection those hand-backs need.
    await this.loop;
    if (this.renewTimer) clearInterval(this.renewTimer);
    await this.worker?.close();
  }

  private async fetch(block: boolean): Promise<BullJob | undefined> {
    const token = `${this.options.workerId}:${this.lane}:${++this.tokenSeq}`;
    const job = (await this.worker!.getNextJob(token, { block })) as BullJob | undefined;
    if (job?.id) this.held.set(job.id, { job, token });
    return job?.id ? job : undefined;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let first = this.pending;
      this.pending = undefined;
      if (!first) {
        try {
          first = await this.fetch(true);
        } catch (err) {
          if (this.stopping) break;
          this.options.log.debug('could not fetch a job; retrying', {
            lane: this.lane,
            error: errorText(err),
          });
          await sleep(1_000);
          continue;
        }
      }
      if (!first) continue;
      if (this.stopping) {
        await this.release(first);
        break;
      }
      const batch = [first];
      const limit = first.data.batchKey ? this.executor.batchLimit(first.data.kind) : 1;
      while (batch.length < limit && !this.stopping) {
        const next = await this.fetch(false).catch(() => undefined);
        if (!next) break;
        if (next.data.kind === first.data.kind && next.data.batchKey === first.data.batchKey) {
          batch.push(next);
        } else {
          this.pending = next;
          break;
        }
      }
      await this.process(batch);
    }
    if (this.pending) await this.release(this.pending);
    this.pending = undefined;
  }

  /** Puts an unstarted job back in the queue without counting an attempt. */
  private async release(job: BullJob): Promise<void> {
    await this.finish(job, { status: 'interrupted', busyMs: 0 });
  }

  private async process(batch: BullJob[]): Promise<void> {
    const runnable: BullJob[] = [];
    for (const job of batch) {
      const attempt = attemptsOf(job);
      const cancelledBy = await this.redis.get(cancelKey(this.options.prefix, job.id!)).catch(() => null);
      if (cancelledBy !== null) {
        await this.finish(job, { status: 'failed', failure: failures.cancelled(cancelledBy), busyMs: 0 });
      } else if (attempt > job.data.maxAttempts) {
        const failure = failures.crashed('it stopped during each attempt', job.data.maxAttempts);
        await this.finish(job, { status: 'failed', failure, busyMs: 0 });
      } else {
        runnable.push(job);
      }
    }
    if (runnable.length === 0) return;
    const byId = new Map(runnable.map((job) => [job.id!, job]));
    const execJobs: ExecJob[] = runnable.map((job) => ({
      id: job.id!,
      kind: job.data.kind,
      payload: job.data.payload,
      units: job.data.units,
      attempt: attemptsOf(job),
      maxAttempts: job.data.maxAttempts,
      timeLimitMs: job.data.timeLimitMs,
    }));
    const finishing: Array<Promise<void>> = [];
    await this.executor.run(execJobs, {
      progress: (id, progress) => {
        byId
          .get(id)
          ?.updateProgress({ progress } satisfies BullProgress)
          .catch((err) => this.options.log.debug('progress not sent', { error: errorText(err) }));
      },
      done: (id, outcome) => finishing.push(this.finish(byId.get(id)!, outcome)),
    });
    await Promise.all(finishing);
  }

  private async finish(job: BullJob, outcome: ExecOutcome): Promise<void> {
    const token = this.held.get(job.id!)?.token;
    if (!token) return;
    this.acknowledging.add(job.id!);
    try {
      await this.acknowledge(job, token, outcome);
    } finally {
      this.held.delete(job.id!);
      this.acknowledging.delete(job.id!);
    }
  }

  /**
   * Moves the job to its end state in Redis. Its lock is renewed until the move is stored, so no
   * other worker takes the job meanwhile; outcomes are retried until Redis takes them or the job is
   * no longer ours (lock lost: another worker has it), and during a shutdown for a while only.
   */
  private async acknowledge(job: BullJob, token: string, outcome: ExecOutcome): Promise<void> {
    const { log } = this.options;
    const untilStored = () => !this.stopping;
    if (outcome.status === 'completed') {
      const value: BullReturn = {
        result: outcome.result,
        busyMs: outcome.busyMs,
        batchSize: outcome.batchSize,
      };
      await persistently('complete a job', log, () => job.moveToCompleted(value, token, false), untilStored);
    } else if (outcome.status === 'failed') {
      // Unrecoverable: a failure here is final; only a dead worker earns another attempt.
      const error = new UnrecoverableError(encodeFailure(outcome.failure));
      await persistently('fail a job', log, () => job.moveToFailed(error, token, false), untilStored);
      if (outcome.failure.code === 'cancelled') {
        await this.redis.del(cancelKey(this.options.prefix, job.id!)).catch(() => {});
      }
    } else {
      job.data = { ...job.data, interruptions: (job.data.interruptions ?? 0) + 1 };
      await persistently('put a job back', log, async () => {
        await job.updateData(job.data);
        await job.moveToWait(token);
      });
    }
  }

  private async renewLocks(): Promise<void> {
    if (this.held.size === 0 || !this.worker) return;
    const entries = [...this.held.values()];
    try {
      const lost = await this.worker.extendJobLocks(
        entries.map((entry) => entry.job.id!),
        entries.map((entry) => entry.token),
        this.options.lockDurationMs,
      );
      for (const id of lost) {
        // Another worker may already run it: stop ours rather than run it twice.
        if (!this.held.has(id) || this.acknowledging.has(id)) continue;
        this.options.log.warn('lost the lock of a job; stopping it here', { jobId: id });
        this.executor.abort(id, { code: 'shutdown' });
      }
    } catch (err) {
      this.options.log.debug('lock renewal failed', { error: errorText(err) });
    }
  }
}

export interface ServedQueues {
  /**
   * Hands unfinished jobs back to the queue and exits the process with `code`, at the latest
   * after `deadlineMs` (a lane whose handler is stuck never finishes).
   */
  stop(why: string, code?: number, deadlineMs?: number): Promise<void>;
}

/** Serves the lanes until the process is told to stop (parent message, disconnect, SIGTERM). */
export async function serveBullQueues(
  executor: JobExecutor,
  options: BullServeOptions,
): Promise<ServedQueues> {
  const redis = new Redis(redisOptions(options.url));
  redis.on('error', () => {});
  const subscriber = new Redis(redisOptions(options.url));
  subscriber.on('error', () => {});
  await subscriber.subscribe(cancelChannel(options.prefix));
  subscriber.on('message', (_channel, message: string) => {
    try {
      const { id, by } = JSON.parse(message) as { id: string; by: string };
      executor.abort(id, { code: 'cancelled', by });
    } catch {
      options.log.warn('ignoring a malformed cancel message', { message });
    }
  });
  const runners = options.lanes.map((lane) => new LaneRunner(lane, executor, options, redis));
  await Promise.all(runners.map((runner) => runner.start()));

  let stopping = false;
  const stop = async (why: string, code = 0, deadlineMs = options.abortGraceMs + 5_000) => {
    if (stopping) return;
    stopping = true;
    options.log.info('worker shutting down', { why });
    const force = setTimeout(() => process.exit(code), deadlineMs);
    await Promise.all(runners.map((runner) => runner.stop()));
    await Promise.allSettled([redis.quit(), subscriber.quit()]);
    clearTimeout(force);
    process.exit(code);
  };
  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'shutdown') void stop('asked by its supervisor');
  });
  process.on('disconnect', () => void stop('its supervisor went away'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  return { stop };
}
