// The embedded queue: the bot process owns the queue (kept in keyv, SQLite by default, so a
// restart resumes it) and feeds one forked worker process over IPC. The owner decides what runs:
// one batch per lane at a time, priority then age, `generate` jobs with one batch key together.
// It outlives its worker: a worker that dies has its jobs retried (or failed) and is restarted.
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../../errors.ts';
import { failures } from '../errors.ts';
import { compareQueued } from '../eta.ts';
import type { ExecJob, ExecOutcome } from '../executor.ts';
import { type KindMap, LANES, type Lane } from '../kinds.ts';
import { QueueCore, type QueueCoreOptions, StoreWriteError } from '../queue-core.ts';
import type { JobRecord } from '../types.ts';
import type { FromWorker, WorkerProcessConfig } from '../worker/protocol.ts';
import { type WorkerExit, WorkerSupervisor } from '../worker/supervisor.ts';
import { isAlive, outliveOrphanWorkers } from './orphans.ts';

export interface EmbeddedQueueOptions {
  dataDir: string;
  handlerModules: string[];
  /** Batches running at once per lane. */
  laneConcurrency?: Record<Lane, number>;
  /** Time a handler gets to return after its abort signal. */
  abortGraceMs?: number;
  progressIntervalMs?: number;
  /** Caps batch sizes; 1 turns batching off. */
  maxBatch?: number;
  /** How often CLI cancel requests are picked up. */
  cancelPollMs?: number;
  /** How often the owner lease is renewed; a lease three times older is abandoned. */
  leaseRenewMs?: number;
  /** Extra time past a job's limit after which the owner kills a worker that did not stop it. */
  hardKillGraceMs?: number;
  workerRestartDelayMs?: { min: number; max: number };
  workerEnv?: NodeJS.ProcessEnv;
}

/** Pause between rounds of store writes while the store refuses them. */
const STORE_OUTAGE_PAUSE_MS = 1_000;

interface RunningBatch {
  id: number;
  lane: Lane;
  jobIds: Set<string>;
}

export class EmbeddedJobQueue<KM extends KindMap> extends QueueCore<KM> {
  readonly backend = 'embedded' as const;
  private readonly supervisor: WorkerSupervisor;
  private readonly batches = new Map<number, RunningBatch>();
  private readonly batchOf = new Map<string, RunningBatch>();
  private readonly hardTimers = new Map<string, NodeJS.Timeout>();
  /** Jobs the owner gave up on (time limit passed, worker killed): their outcome is already decided. */
  private readonly overdue = new Set<string>();
  private batchSeq = 0;
  /** Jobs whose outcome the worker reported and that wait for the store to take it. */
  private readonly finishing = new Set<string>();
  private dispatchRetry?: NodeJS.Timeout;
  /** Outcome handling under way; closing waits for it so no write lands after the store closed. */
  private readonly handling = new Set<Promise<void>>();
  private timers: NodeJS.Timeout[] = [];
  private readonly concurrency: Record<Lane, number>;
  private readonly abortGraceMs: number;

  private constructor(
    core: QueueCoreOptions<KM>,
    private readonly embedded: EmbeddedQueueOptions,
  ) {
    super(core);
    this.concurrency = embedded.laneConcurrency ?? { short: 1, long: 1 };
    this.abortGraceMs = embedded.abortGraceMs ?? 5_000;
    const config: WorkerProcessConfig = {
      transport: 'ipc',
      dataDir: embedded.dataDir,
      handlerModules: embedded.handlerModules,
      abortGraceMs: this.abortGraceMs,
      progressIntervalMs: embedded.progressIntervalMs ?? 250,
      maxBatch: embedded.maxBatch,
    };
    this.supervisor = new WorkerSupervisor({
      config,
      name: 'embedded worker',
      restartDelayMs: embedded.workerRestartDelayMs,
      stopGraceMs: this.abortGraceMs + 2_000,
      env: embedded.workerEnv,
      log: core.log,
    });
  }

  static async open<KM extends KindMap>(
    core: QueueCoreOptions<KM>,
    embedded: EmbeddedQueueOptions,
  ): Promise<EmbeddedJobQueue<KM>> {
    const queue = new EmbeddedJobQueue(core, embedded);
    try {
      await queue.start();
    } catch (err) {
      await queue.store.close().catch(() => {});
      throw err;
    }
    return queue;
  }

  /** Pid of the worker process; empty while it restarts. */
  workerPids(): number[] {
    return this.supervisor.pid === undefined ? [] : [this.supervisor.pid];
  }

  async whenWorkersReady(timeoutMs?: number): Promise<void> {
    await this.supervisor.whenReady(timeoutMs);
  }

  private async start(): Promise<void> {
    const leaseMs = this.embedded.leaseRenewMs ?? 5_000;
    const lease = await this.store.owner();
    if (
      lease &&
      Date.now() - lease.renewedAt < 3 * leaseMs &&
      !(lease.host === hostname() && (lease.pid === process.pid || !isAlive(lease.pid)))
    ) {
      throw new UserError(
        `another process (pid ${lease.pid} on ${lease.host}) runs the embedded job queue of this store`,
        'stop it first, or use a Redis queue (FACESTYLE_QUEUE_URL) to run several processes',
      );
    }
    await this.store.renewOwner();
    await this.openCore();
    const unfinished = await this.store.unfinished();
    await outliveOrphanWorkers(unfinished, {
      graceMs: this.abortGraceMs + (this.embedded.hardKillGraceMs ?? 10_000),
      log: this.log,
    });
    for (const record of unfinished) await this.recover(record);
    this.timers.push(setInterval(() => void this.store.renewOwner().catch(() => {}), leaseMs));
    this.timers.push(setInterval(() => void this.pollCancelRequests(), this.embedded.cancelPollMs ?? 1_000));
    this.supervisor.on('ready', () => this.dispatch());
    this.supervisor.on('message', (message) => this.onWorkerMessage(message));
    this.supervisor.on('exit', (exit) => this.track(this.onWorkerExit(exit)));
    this.supervisor.start();
    await this.pollCancelRequests();
  }

  /** A job the previous owner left unfinished: queued ones wait again, running ones were cut off. */
  private async recover(record: JobRecord): Promise<void> {
    if (record.status === 'queued') {
      this.active.set(record.id, record);
    } else if (record.cancelRequest) {
      await this.markFailed(record, failures.cancelled(record.cancelRequest.by));
    } else if (record.attempt >= record.maxAttempts) {
      await this.markFailed(record, failures.crashed('the bot stopped during the job', record.attempt));
    } else {
      await this.markRequeued(record, 'the bot stopped while it ran');
    }
  }

  protected workersByLane(): Partial<Record<Lane, number>> {
    return this.concurrency;
  }

  protected async queuedCount(): Promise<number> {
    let count = 0;
    for (const record of this.active.values()) if (record.status === 'queued') count++;
    return count;
  }

  protected async enqueue(record: JobRecord): Promise<void> {
    await this.store.put(record);
    setImmediate(() => this.dispatch());
  }

  protected async cancelUnfinished(record: JobRecord, by: string): Promise<void> {
    if (record.status === 'queued') {
      await this.markFailed(record, failures.cancelled(by));
      return;
    }
    record.cancelRequest = { by, at: Date.now() };
    this.note(record, `cancel requested by ${by}`);
    await this.store.put(record);
    this.supervisor.send({ type: 'abort', id: record.id, reason: { code: 'cancelled', by } });
    // The worker answers within its abort grace, or is killed after the owner's own deadline.
    await this.waitFor(record.id, { timeoutMs: this.abortGraceMs + 5_000 }).catch(() => {});
  }

  private async pollCancelRequests(): Promise<void> {
    if (this.closing) return;
    try {
      for (const request of await this.store.cancelRequests()) {
        await this.store.clearCancelRequest(request.id);
        const record = this.active.get(request.id);
        if (record) await this.cancelUnfinished(record, request.by);
      }
    } catch (err) {
      this.log.warn('could not read cancel requests', { error: (err as Error).message });
    }
  }

  private dispatch(): void {
    const ready = this.supervisor.ready;
    if (this.closing || !ready) return;
    for (const lane of LANES) {
      while (this.busySlots(lane) < this.concurrency[lane]) {
        // A job whose start is being stored is still `queued` but already has its slot.
        const queued = [...this.active.values()]
          .filter(
            (record) =>
              record.lane === lane &&
              record.status === 'queued' &&
              !this.batchOf.has(record.id) &&
              !this.finishing.has(record.id),
          )
          .sort(compareQueued);
        const first = queued[0];
        if (!first) break;
        if (!ready.kinds.includes(first.kind)) {
          // `durably` marks it finishing at once, so this loop does not pick it again.
          this.track(
            this.durably(first, 'an unsupported kind', () =>
              this.markFailed(first, failures.unsupported(first.kind)),
            ),
          );
          continue;
        }
        const limit = first.batchKey ? (ready.batchLimits[first.kind] ?? 1) : 1;
        const batch = queued
          .filter(
            (record) =>
              record === first || (record.kind === first.kind && record.batchKey === first.batchKey),
          )
          .slice(0, limit);
        this.startBatch(lane, batch, ready.workerId);
      }
    }
  }

  private busySlots(lane: Lane): number {
    let busy = 0;
    for (const batch of this.batches.values()) if (batch.lane === lane) busy++;
    return busy;
  }

  private startBatch(lane: Lane, records: JobRecord[], workerId: string): void {
    const batch: RunningBatch = {
      id: ++this.batchSeq,
      lane,
      jobIds: new Set(records.map((record) => record.id)),
    };
    this.batches.set(batch.id, batch);
    for (const record of records) this.batchOf.set(record.id, batch);
    this.track(this.launch(records, workerId));
  }

  /**
   * Stores each job's start, then hands the started ones to the worker. A job whose start cannot
   * be stored stays queued and is not run: after a restart the store would not know it ran.
   */
  private async launch(records: JobRecord[], workerId: string): Promise<void> {
    const now = Date.now();
    const jobs: ExecJob[] = [];
    for (const record of records) {
      try {
        await this.markStarted(record, record.attempt + 1, workerId, now);
      } catch (err) {
        this.log.error('could not store the start of a job; it stays queued', {
          jobId: record.id,
          error: (err as Error).message,
        });
        this.release(record.id);
        this.retryDispatchLater();
        continue;
      }
      jobs.push({
        id: record.id,
        kind: record.kind,
        payload: record.payload,
        units: record.units,
        attempt: record.attempt,
        maxAttempts: record.maxAttempts,
        timeLimitMs: record.timeLimitMs,
      });
      // The worker enforces the limit itself; this catches a worker too busy to do so.
      const deadline = record.timeLimitMs + this.abortGraceMs + (this.embedded.hardKillGraceMs ?? 10_000);
      this.hardTimers.set(
        record.id,
        setTimeout(() => this.track(this.onOverdue(record)), deadline),
      );
    }
    if (jobs.length === 0) return;
    if (this.supervisor.send({ type: 'run', jobs })) return;
    // The worker went away while the starts were stored. Jobs its exit handler already took back
    // left their slot; the others go back to the queue here, the attempt not counted.
    this.log.warn('could not hand jobs to the worker', { jobs: jobs.map((job) => job.id) });
    for (const job of jobs) {
      const record = this.active.get(job.id);
      if (!record || !this.batchOf.has(job.id) || record.status !== 'running') continue;
      clearTimeout(this.hardTimers.get(job.id));
      await this.durably(record, 'a hand-back', () =>
        this.markRequeued(record, 'the worker went away before it took the job', true),
      );
      this.release(job.id);
    }
    this.dispatch();
  }

  private retryDispatchLater(): void {
    if (this.dispatchRetry || this.closing) return;
    this.dispatchRetry = setTimeout(() => {
      this.dispatchRetry = undefined;
      this.dispatch();
    }, STORE_OUTAGE_PAUSE_MS);
  }

  /**
   * Stores a job's outcome, trying until the store takes it: until then the job is not
   * acknowledged (no event, its batch slot stays taken), so it is neither lost nor reported early.
   * Only a shutdown ends the wait, leaving the job as the store last knew it (run again on restart).
   */
  private async durably(record: JobRecord, what: string, write: () => Promise<void>): Promise<void> {
    this.finishing.add(record.id);
    try {
      for (;;) {
        try {
          await write();
          return;
        } catch (err) {
          if (!(err instanceof StoreWriteError)) throw err;
          if (this.closing) {
            this.log.error(
              `could not store ${what} before shutting down; the job runs again after a restart`,
              {
                jobId: record.id,
                error: err.message,
              },
            );
            return;
          }
          this.log.error(`could not store ${what}; holding the job until the store takes it`, {
            jobId: record.id,
            error: err.message,
          });
          await sleep(STORE_OUTAGE_PAUSE_MS);
        }
      }
    } finally {
      this.finishing.delete(record.id);
    }
  }

  private async onOverdue(record: JobRecord): Promise<void> {
    if (record.status !== 'running' || this.finishing.has(record.id)) return;
    this.log.error('worker did not stop a job past its time limit; killing the worker', { jobId: record.id });
    this.overdue.add(record.id);
    this.supervisor.kill();
    await this.durably(record, 'a timeout', () =>
      this.markFailed(record, failures.timeout(record.timeLimitMs)),
    );
    this.release(record.id);
  }

  /** Frees the job's batch slot (once all its jobs are done) and its timer. */
  private release(id: string): void {
    clearTimeout(this.hardTimers.get(id));
    this.hardTimers.delete(id);
    const batch = this.batchOf.get(id);
    this.batchOf.delete(id);
    if (!batch) return;
    batch.jobIds.delete(id);
    if (batch.jobIds.size === 0) this.batches.delete(batch.id);
  }

  private onWorkerMessage(message: FromWorker): void {
    if (message.type === 'ready') return;
    if (message.type === 'stuck') {
      // It exits once its other jobs are handed back; until its replacement is ready, nothing new.
      this.supervisor.retire();
      return;
    }
    const record = this.active.get(message.id);
    if (record?.status !== 'running' || this.overdue.has(message.id) || this.finishing.has(message.id))
      return;
    switch (message.type) {
      case 'progress':
        this.updateProgress(record, message.progress);
        break;
      case 'done':
        this.track(this.onDone(record, message.outcome));
        break;
    }
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((err) =>
      this.log.error('job bookkeeping failed', { error: (err as Error).message }),
    );
    this.handling.add(tracked);
    void tracked.finally(() => this.handling.delete(tracked));
  }

  private async onDone(record: JobRecord, outcome: ExecOutcome): Promise<void> {
    clearTimeout(this.hardTimers.get(record.id));
    this.hardTimers.delete(record.id);
    await this.durably(record, `the outcome (${outcome.status})`, async () => {
      if (outcome.status === 'completed') {
        await this.markCompleted(record, outcome.result, outcome.busyMs, outcome.batchSize);
      } else if (outcome.status === 'failed') {
        await this.markFailed(record, outcome.failure, outcome.busyMs);
      } else {
        // Cut short by a planned shutdown: not the job's fault, so the attempt does not count.
        await this.markRequeued(record, 'the worker shut down', true);
      }
    });
    this.release(record.id);
    this.dispatch();
  }

  private async onWorkerExit(exit: WorkerExit): Promise<void> {
    const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
    // Jobs whose outcome is being stored already ended in the worker: theirs is not cut off.
    const cutOff = [...this.batchOf.keys()]
      .filter((id) => !this.finishing.has(id))
      .map((id) => this.active.get(id))
      .filter((record): record is JobRecord => record?.status === 'running');
    for (const record of cutOff) this.release(record.id);
    for (const record of cutOff) {
      if (this.overdue.has(record.id)) continue;
      await this.durably(record, 'the end of an attempt', async () => {
        if (record.cancelRequest) {
          await this.markFailed(record, failures.cancelled(record.cancelRequest.by));
        } else if (exit.planned) {
          await this.markRequeued(record, 'the worker shut down', true);
        } else if (record.attempt >= record.maxAttempts) {
          await this.markFailed(record, failures.crashed(how, record.attempt));
        } else {
          await this.markRequeued(record, `the worker process died (${how})`);
        }
      });
    }
    this.overdue.clear();
  }

  protected async closeBackend(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.dispatchRetry);
    // Interrupted jobs come back as `done: interrupted` or through the exit handler, and are requeued.
    await this.supervisor.stop();
    await Promise.all(this.handling);
    for (const timer of this.hardTimers.values()) clearTimeout(timer);
    await this.store.releaseOwner();
  }
}
