// The BullMQ queue, seen from the bot (or the CLI): jobs go to Redis, one BullMQ queue per lane,
// and any number of worker processes on any machines take them. Job records are mirrored into the
// keyv store from QueueEvents, and a periodic reconciliation with Redis repairs what events
// missed (the bot was down, Redis restarted) - including putting back jobs Redis lost.
import { type Job, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { decodeFailure, failures, QueueUnavailableError } from '../errors.ts';
import { type KindMap, LANES, type Lane } from '../kinds.ts';
import { QueueCore, type QueueCoreOptions } from '../queue-core.ts';
import type { JobRecord } from '../types.ts';
import type { BullWorkerSettings } from '../worker/protocol.ts';
import { WorkerSupervisor } from '../worker/supervisor.ts';
import { cancelChannel, cancelKey, DEFAULT_BULL_WORKER, laneQueueName, redisOptions } from './names.ts';
import { attemptsOf, type BullJobData, type BullProgress, type BullReturn, jobDataOf } from './wire.ts';

type BullJob = Job<BullJobData, BullReturn>;

export interface BullQueueOptions {
  url: string;
  prefix: string;
  dataDir: string;
  /** Listen to QueueEvents and reconcile (the bot); off for one-shot clients (the CLI). */
  events?: boolean;
  reconcileIntervalMs?: number;
  /** Worker processes this process forks and supervises (0: workers run elsewhere). */
  spawnWorkers?: number;
  worker?: Partial<Omit<BullWorkerSettings, 'url' | 'prefix'>> & {
    handlerModules: string[];
    abortGraceMs?: number;
    progressIntervalMs?: number;
    maxBatch?: number;
    restartDelayMs?: { min: number; max: number };
    env?: NodeJS.ProcessEnv;
  };
  /** Finished jobs stay in Redis this long (the store keeps their records longer). */
  keepFinishedSeconds?: number;
  /** How long a call may wait for Redis before the queue reports itself unavailable. */
  commandTimeoutMs?: number;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class BullJobQueue<KM extends KindMap> extends QueueCore<KM> {
  readonly backend = 'bullmq' as const;
  private readonly queues: Record<Lane, Queue<BullJobData, BullReturn>>;
  private readonly events: QueueEvents[] = [];
  private readonly redis: Redis;
  private readonly supervisors: WorkerSupervisor[] = [];
  /** Jobs being added right now: not yet in Redis, so reconciliation must leave them alone. */
  private readonly adding = new Set<string>();
  private readonly workerCounts: Partial<Record<Lane, number>> = {};
  private eventChain: Promise<void> = Promise.resolve();
  private reconcileTimer?: NodeJS.Timeout;
  /** Set once connected and loaded; a failed open closes without talking to Redis. */
  private started = false;
  private reconciling?: Promise<void>;

  private constructor(
    core: QueueCoreOptions<KM>,
    private readonly bull: BullQueueOptions,
  ) {
    super(core);
    // A command retried after a reconnect could add a job the caller was told had failed.
    const connection = { ...redisOptions(bull.url), maxRetriesPerRequest: 1 };
    this.queues = Object.fromEntries(
      LANES.map((lane) => [
        lane,
        new Queue<BullJobData, BullReturn>(laneQueueName(lane), { connection, prefix: bull.prefix }),
      ]),
    ) as unknown as Record<Lane, Queue<BullJobData, BullReturn>>;
    for (const queue of Object.values(this.queues)) queue.on('error', () => {});
    this.redis = new Redis(connection);
    this.redis.on('error', () => {});
  }

  static async open<KM extends KindMap>(
    core: QueueCoreOptions<KM>,
    bull: BullQueueOptions,
  ): Promise<BullJobQueue<KM>> {
    const queue = new BullJobQueue(core, bull);
    try {
      await queue.start();
    } catch (err) {
      await queue.closeBackend().catch(() => {});
      await queue.store.close().catch(() => {});
      throw err;
    }
    return queue;
  }

  /** Pids of the worker processes this queue supervises. */
  workerPids(): number[] {
    return this.supervisors
      .map((supervisor) => supervisor.pid)
      .filter((pid): pid is number => pid !== undefined);
  }

  async whenWorkersReady(timeoutMs?: number): Promise<void> {
    await Promise.all(this.supervisors.map((supervisor) => supervisor.whenReady(timeoutMs)));
  }

  private async start(): Promise<void> {
    await this.redisCall('connect', async () => {
      await Promise.all([
        ...Object.values(this.queues).map((queue) => queue.waitUntilReady()),
        this.redis.ping(),
      ]);
    });
    await this.openCore();
    for (const record of await this.store.unfinished()) this.active.set(record.id, record);
    if (this.bull.events !== false) {
      for (const lane of LANES) this.listen(lane);
      this.reconcileTimer = setInterval(() => void this.reconcile(), this.bull.reconcileIntervalMs ?? 5_000);
    }
    await this.reconcile();
    for (let i = 0; i < (this.bull.spawnWorkers ?? 0); i++) this.spawnWorker();
    this.started = true;
  }

  private spawnWorker(): void {
    const worker = this.bull.worker;
    if (!worker) throw new Error('spawnWorkers needs worker options');
    const abortGraceMs = worker.abortGraceMs ?? 5_000;
    const supervisor = new WorkerSupervisor({
      name: 'bullmq worker',
      config: {
        transport: 'bullmq',
        dataDir: this.bull.dataDir,
        handlerModules: worker.handlerModules,
        abortGraceMs,
        progressIntervalMs: worker.progressIntervalMs ?? 250,
        maxBatch: worker.maxBatch,
        bullmq: {
          lanes: worker.lanes ?? DEFAULT_BULL_WORKER.lanes,
          lockDurationMs: worker.lockDurationMs ?? DEFAULT_BULL_WORKER.lockDurationMs,
          stalledIntervalMs: worker.stalledIntervalMs ?? DEFAULT_BULL_WORKER.stalledIntervalMs,
          drainDelaySeconds: worker.drainDelaySeconds ?? DEFAULT_BULL_WORKER.drainDelaySeconds,
          url: this.bull.url,
          prefix: this.bull.prefix,
        },
      },
      restartDelayMs: worker.restartDelayMs,
      stopGraceMs: abortGraceMs + 5_000,
      env: worker.env,
      log: this.log,
    });
    supervisor.start();
    this.supervisors.push(supervisor);
  }

  /** Runs a Redis operation with a deadline; failures become `QueueUnavailableError`. */
  private async redisCall<T>(what: string, call: () => Promise<T>): Promise<T> {
    const timeoutMs = this.bull.commandTimeoutMs ?? 5_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        call(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer from Redis within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } catch (err) {
      throw new QueueUnavailableError(`${what}: ${errorText(err)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads an unfinished job's state from Redis first, so the answer is current even without events. */
  override async get(id: string) {
    const record = this.active.get(id);
    if (record && !this.closing) await this.serially(() => this.refresh(record.lane, id)).catch(() => {});
    return super.get(id);
  }

  /** Runs `work` after every event and refresh before it: a job's updates apply in order. */
  private serially(work: () => Promise<void>): Promise<void> {
    const run = this.eventChain.then(work);
    this.eventChain = run.catch(() => {});
    return run;
  }

  protected workersByLane(): Partial<Record<Lane, number>> {
    return this.workerCounts;
  }

  protected async queuedCount(): Promise<number> {
    const counts = await this.redisCall('count jobs', () =>
      Promise.all(
        Object.values(this.queues).map((queue) => queue.getJobCounts('wait', 'prioritized', 'delayed')),
      ),
    );
    return counts.reduce((sum, byState) => sum + Object.values(byState).reduce((a, b) => a + b, 0), 0);
  }

  protected async enqueue(record: JobRecord): Promise<void> {
    this.adding.add(record.id);
    try {
      await this.store.put(record);
      await this.redisCall('queue the job', async () => {
        // Refuse at once while disconnected, rather than queue a command that runs later, unseen.
        if (this.redis.status !== 'ready') throw new Error(`Redis connection is ${this.redis.status}`);
        return this.addToRedis(record);
      });
    } catch (err) {
      await this.store.delete(record.id).catch(() => {});
      throw err;
    } finally {
      this.adding.delete(record.id);
    }
  }

  private addToRedis(record: JobRecord, extra: Partial<BullJobData> = {}): Promise<BullJob> {
    return this.queues[record.lane].add(
      record.kind,
      { ...jobDataOf(record), ...extra },
      {
        jobId: record.id,
        // BullMQ priorities start at 1 (0 means none and would skip the priority order).
        priority: Math.max(1, Math.min(2 ** 21, Math.round(record.priority))),
        attempts: 1,
        removeOnComplete: { age: this.bull.keepFinishedSeconds ?? 7 * 86_400 },
        removeOnFail: { age: this.bull.keepFinishedSeconds ?? 7 * 86_400 },
      },
    );
  }

  protected async cancelUnfinished(record: JobRecord, by: string): Promise<void> {
    record.cancelRequest = { by, at: Date.now() };
    this.note(record, `cancel requested by ${by}`);
    await this.store.put(record);
    const job = await this.redisCall('find the job', () => this.queues[record.lane].getJob(record.id));
    if (!job) {
      await this.markFailed(record, failures.cancelled(by));
      return;
    }
    const state = await this.redisCall('read the job', () => job.getState());
    if (state === 'waiting' || state === 'prioritized' || state === 'delayed') {
      try {
        await job.remove();
        await this.markFailed(record, failures.cancelled(by));
        return;
      } catch {
        // A worker took it in the meantime: cancel it as a running job.
      }
    }
    if (state === 'completed' || state === 'failed') return;
    // The key catches a worker that takes the job after the message went out.
    await this.redisCall('cancel the job', async () => {
      await this.redis.set(cancelKey(this.bull.prefix, record.id), by, 'EX', 7 * 86_400);
      await this.redis.publish(cancelChannel(this.bull.prefix), JSON.stringify({ id: record.id, by }));
    });
    const abortGraceMs = this.bull.worker?.abortGraceMs ?? 5_000;
    await this.waitFor(record.id, { timeoutMs: abortGraceMs + 5_000 }).catch(() => {});
  }

  // --- events from Redis --------------------------------------------------------------------

  private listen(lane: Lane): void {
    const events = new QueueEvents(laneQueueName(lane), {
      connection: redisOptions(this.bull.url),
      prefix: this.bull.prefix,
    });
    events.on('error', () => {});
    const on = (name: string, handle: (args: Record<string, unknown>) => Promise<void>) => {
      // biome-ignore lint/suspicious/noExplicitAny: QueueEvents' listener map is keyed by literal names
      (events as any).on(name, (args: Record<string, unknown>) => {
        this.serially(async () => {
          if (!this.closing) await handle(args);
        }).catch((err) => this.log.debug('job event not applied', { event: name, error: errorText(err) }));
      });
    };
    on('waiting', ({ jobId }) => this.refresh(lane, jobId as string));
    on('active', ({ jobId }) => this.refresh(lane, jobId as string));
    on('stalled', ({ jobId }) => this.refresh(lane, jobId as string, 'its worker stopped responding'));
    on('completed', ({ jobId }) => this.refresh(lane, jobId as string));
    on('failed', ({ jobId }) => this.refresh(lane, jobId as string));
    on('removed', ({ jobId }) => this.onRemoved(jobId as string));
    on('progress', async ({ jobId, data }) => {
      const record = this.active.get(jobId as string);
      if (!record) return;
      const message = data as BullProgress;
      if (message && typeof message === 'object' && 'progress' in message)
        this.updateProgress(record, message.progress);
    });
    this.events.push(events);
  }

  private async onRemoved(id: string): Promise<void> {
    const record = this.active.get(id) ?? (await this.store.get(id));
    if (
      !record ||
      record.status === 'completed' ||
      record.status === 'failed' ||
      record.status === 'cancelled'
    )
      return;
    await this.markFailed(record, failures.cancelled(record.cancelRequest?.by ?? 'an operator'));
  }

  /**
   * The job as Redis has it now. The state is read before the data: a job moves on between two
   * reads, and data at least as new as its state (attempts, failure reason) is what `apply` needs.
   */
  private async snapshot(lane: Lane, id: string): Promise<{ state: string; job: BullJob } | undefined> {
    const state = await this.queues[lane].getJobState(id);
    const job = await this.queues[lane].getJob(id);
    return job ? { state, job } : undefined;
  }

  /** Brings the record of `id` in line with its job in Redis. */
  private async refresh(lane: Lane, id: string, requeueReason?: string): Promise<void> {
    const found = await this.snapshot(lane, id);
    let record = this.active.get(id);
    if (!record) {
      const stored = await this.store.get(id);
      if (stored && stored.status !== 'queued' && stored.status !== 'running') return;
      if (!found) return;
      // Submitted by another process: adopt it so this one reports it too.
      record = stored ?? this.recordFromJob(lane, found.job);
      await this.adopt(record);
    }
    if (found) await this.apply(record, found.state, found.job, requeueReason);
  }

  private recordFromJob(lane: Lane, job: BullJob): JobRecord {
    const data = job.data;
    return {
      id: job.id!,
      kind: data.kind,
      lane,
      priority: data.priority,
      status: 'queued',
      payload: data.payload,
      userId: data.userId,
      meta: data.meta,
      createdAt: data.createdAt,
      attempt: 0,
      maxAttempts: data.maxAttempts,
      timeLimitMs: data.timeLimitMs,
      units: data.units,
      batchKey: data.batchKey,
      history: [],
    };
  }

  private async apply(record: JobRecord, state: string, job: BullJob, requeueReason?: string): Promise<void> {
    const attempt = attemptsOf(job);
    const finished = state === 'completed' || state === 'failed';
    if (state === 'active' || (finished && record.status === 'queued' && job.processedOn)) {
      // Events arrive late: an attempt that ended unseen (its worker died) is reported before the
      // new one, and a job that finished before its `active` event was handled still started.
      if (record.status === 'running' && attempt > record.attempt) {
        await this.markRequeued(record, requeueReason ?? 'its worker stopped');
      }
      if (record.status !== 'running' || record.attempt !== attempt) {
        await this.markStarted(record, attempt, job.processedBy, job.processedOn ?? Date.now());
      }
    }
    if (state === 'completed') {
      const value = job.returnvalue as BullReturn | null;
      await this.markCompleted(record, value?.result, value?.busyMs ?? 0, value?.batchSize ?? 1);
    } else if (state === 'failed') {
      await this.markFailed(record, decodeFailure(job.failedReason, this.log, record.id));
    } else if (state === 'waiting' || state === 'prioritized' || state === 'delayed') {
      if (record.status === 'running') await this.markRequeued(record, requeueReason ?? 'its worker stopped');
    }
  }

  /** Repairs the mirror from Redis: missed events, and jobs Redis no longer has. */
  private reconcile(): Promise<void> {
    this.reconciling ??= this.reconcileOnce().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  private async reconcileOnce(final = false): Promise<void> {
    if (this.closing && !final) return;
    try {
      for (const lane of LANES) {
        const workers = await this.queues[lane].getWorkersCount();
        this.workerCounts[lane] = workers;
      }
      for (const record of [...this.active.values()]) {
        if (this.closing && !final) return;
        if (this.adding.has(record.id)) continue;
        await this.serially(() => this.reconcileJob(record));
      }
    } catch (err) {
      this.log.debug('reconciliation skipped', { error: errorText(err) });
    }
  }

  private async reconcileJob(record: JobRecord): Promise<void> {
    if (record.status !== 'queued' && record.status !== 'running') return;
    const found = await this.snapshot(record.lane, record.id);
    if (found) return this.apply(record, found.state, found.job);
    if (record.cancelRequest) return this.markFailed(record, failures.cancelled(record.cancelRequest.by));
    // Redis lost it (restarted without persistence, flushed): the store still has it, so queue it again.
    if (record.status === 'running' && record.attempt >= record.maxAttempts) {
      return this.markFailed(
        record,
        failures.crashed('its queue entry vanished while it ran', record.attempt),
      );
    }
    await this.addToRedis(record, { priorAttempts: record.attempt });
    if (record.status === 'running')
      await this.markRequeued(record, 'the queue lost it (Redis restarted); queued again');
    else this.note(record, 'the queue lost it (Redis restarted); queued again');
  }

  protected async closeBackend(): Promise<void> {
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    await Promise.all(this.supervisors.map((supervisor) => supervisor.stop()));
    // Redis may be down at shutdown: nothing below may wait for it for long.
    const deadline = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
    const limit = this.bull.commandTimeoutMs ?? 5_000;
    await Promise.race([
      (async () => {
        await this.reconciling;
        await this.eventChain;
        // Our workers just handed their jobs back: leave the store saying so.
        if (this.started && this.bull.events !== false) await this.reconcileOnce(true);
      })(),
      deadline(2 * limit),
    ]);
    await Promise.race([
      Promise.allSettled([
        ...this.events.map((events) => events.close()),
        ...Object.values(this.queues).map((queue) => queue.close()),
        this.redis.quit(),
      ]),
      deadline(limit),
    ]);
    for (const client of [...this.events, ...Object.values(this.queues)])
      void client.disconnect().catch(() => {});
    this.redis.disconnect();
  }
}
