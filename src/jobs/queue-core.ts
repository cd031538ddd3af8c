// What both queues share: submission with policies, the in-memory view of unfinished jobs,
// positions and ETAs, events (each transition once per process), waiting, listing, stats, and the
// scheduled cleanup of artifacts and old records. Subclasses move jobs through their backend.
import type { ScheduledTask } from 'node-cron';
import { UserError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { type ArtifactLimits, type ArtifactStore, scheduleCleanup } from '../store/artifacts.ts';
import { JobAlreadyFinishedError, JobNotFoundError, UnknownKindError } from './errors.ts';
import { type DurationAverages, placeJobs } from './eta.ts';
import { newJobId } from './ids.ts';
import { durationAverages, jobInfo, selectJobs } from './job-info.ts';
import type { JobStore } from './job-store.ts';
import { type KindMap, type KindOf, type KindSpecs, LANES, type Lane } from './kinds.ts';
import {
  assertMayCancel,
  checkSubmit,
  type QueuePolicy,
  quotaDay,
  type SubmitSnapshot,
  serverOf,
} from './policy.ts';
import { writeJobRecord } from './store-writes.ts';
import {
  type Actor,
  isTerminal,
  type JobEvent,
  type JobEventType,
  type JobFailure,
  type JobFilter,
  type JobInfo,
  type JobInfoOf,
  type JobProgress,
  type JobQueue,
  type JobRecord,
  type QueueStats,
  type SubmitRequest,
} from './types.ts';

export { StoreWriteError } from './store-writes.ts';

export interface MaintenanceOptions {
  /** node-cron expression for artifact and record cleanup. */
  schedule: string;
  artifacts: ArtifactLimits;
  /** Records of finished jobs older than this are deleted. */
  recordRetentionMs: number;
}

export interface QueueCoreOptions<KM extends KindMap> {
  store: JobStore;
  artifacts: ArtifactStore;
  policy: QueuePolicy;
  kinds: KindSpecs<KM>;
  log: Logger;
  /** Absent: no scheduled cleanup from this process. */
  maintenance?: MaintenanceOptions;
  /** Pauses between the tries of a job state write before it counts as failed (default ~3 s in all). */
  storeRetryDelaysMs?: readonly number[];
}

/** Largest payload accepted, as JSON: payloads travel through IPC and Redis. */
const MAX_PAYLOAD_BYTES = 64 * 1024;
/** Progress is kept in memory at once but written to the store at most this often per job. */
const PROGRESS_PERSIST_MS = 2_000;
const MAX_HISTORY = 50;

/** Remembers the newest `size` keys. */
class RecentKeys {
  private readonly keys = new Set<string>();
  constructor(private readonly size: number) {}
  /** Adds `key`; false when it was already there. */
  add(key: string): boolean {
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    if (this.keys.size > this.size) this.keys.delete(this.keys.values().next().value as string);
    return true;
  }
}

export function cancelledByLabel(actor: Actor, record: Pick<JobRecord, 'userId'>): string {
  return actor.userId === record.userId ? 'its owner' : `admin ${actor.userId}`;
}

export abstract class QueueCore<KM extends KindMap> implements JobQueue<KM> {
  abstract readonly backend: 'embedded' | 'bullmq';
  /** Every unfinished job this process knows of. */
  protected readonly active = new Map<string, JobRecord>();
  protected readonly averages: DurationAverages;
  protected readonly store: JobStore;
  protected readonly log: Logger;
  protected closing = false;
  private readonly listeners = new Set<(event: JobEvent<KM>) => void>();
  private readonly emitted = new RecentKeys(20_000);
  private readonly progressSavedAt = new Map<string, number>();
  private submitChain: Promise<unknown> = Promise.resolve();
  private cleanupTask?: ScheduledTask;

  protected constructor(protected readonly options: QueueCoreOptions<KM>) {
    this.store = options.store;
    this.log = options.log;
    this.averages = durationAverages(options.kinds);
  }

  /** Loads averages and starts the cleanup schedule; subclasses call it while opening. */
  protected async openCore(): Promise<void> {
    for (const [kind, entry] of Object.entries(await this.store.averages())) this.averages.load(kind, entry);
    const maintenance = this.options.maintenance;
    if (maintenance) {
      this.cleanupTask = scheduleCleanup(maintenance.schedule, 'job data cleanup', () =>
        this.runMaintenance(),
      );
    }
  }

  /** Prunes artifacts (keeping those of unfinished jobs) and old records; also run by the schedule. */
  async runMaintenance(): Promise<void> {
    const maintenance = this.options.maintenance;
    if (!maintenance) return;
    await this.options.artifacts.prune(maintenance.artifacts, (entry) => this.active.has(entry.name));
    const removed = await this.store.pruneFinished(Date.now() - maintenance.recordRetentionMs);
    if (removed) this.log.info('pruned old job records', { removed });
  }

  // --- backend operations -------------------------------------------------------------------

  /** Hands a new record (already in `active`) to the backend; throws to refuse it. */
  protected abstract enqueue(record: JobRecord): Promise<void>;
  /** Jobs waiting to start, all lanes. */
  protected abstract queuedCount(): Promise<number>;
  /** Cancels an unfinished job; resolves when it is cancelled or the worker was told to stop it. */
  protected abstract cancelUnfinished(record: JobRecord, by: string): Promise<void>;
  protected abstract workersByLane(): Partial<Record<Lane, number>>;
  protected abstract closeBackend(): Promise<void>;

  // --- the public interface -----------------------------------------------------------------

  async submit<K extends KindOf<KM>>(request: SubmitRequest<KM, K>): Promise<JobInfoOf<KM, K>> {
    if (this.closing) throw new UserError('the job queue is shutting down', 'try again in a minute');
    const spec = this.options.kinds[request.kind];
    if (!spec) throw new UnknownKindError(request.kind, Object.keys(this.options.kinds));
    const payload = spec.validate(request.payload);
    const size = Buffer.byteLength(JSON.stringify(payload));
    if (size > MAX_PAYLOAD_BYTES) throw new UserError(`the job's parameters are too large (${size} bytes)`);
    // One submission at a time, so two quick clicks cannot both pass a quota or cooldown.
    const run = this.submitChain.then(async () => {
      const now = Date.now();
      const { actor } = request;
      checkSubmit(
        this.options.policy,
        request.kind,
        actor,
        await this.submitSnapshot(request.kind, actor, now),
      );
      const record: JobRecord = {
        id: newJobId(now),
        kind: request.kind,
        lane: spec.lane,
        priority: request.priority ?? spec.priority,
        status: 'queued',
        payload,
        userId: actor.userId,
        // The server is the actor's, whatever the caller put in meta: caps and admin rights key on it.
        meta: { ...request.meta, ...(actor.guildId === undefined ? {} : { guildId: actor.guildId }) },
        createdAt: now,
        attempt: 0,
        maxAttempts: request.limits?.maxAttempts ?? spec.maxAttempts,
        timeLimitMs: request.limits?.timeLimitMs ?? spec.timeLimitMs,
        units: spec.units(payload),
        batchKey: spec.batchKey?.(payload),
        history: [],
      };
      this.active.set(record.id, record);
      try {
        await this.enqueue(record);
      } catch (err) {
        this.active.delete(record.id);
        throw err;
      }
      // Before any await: the backend may start the job on the next tick, and `queued` comes first.
      this.emit('queued', record);
      const info = this.info(record) as JobInfoOf<KM, K>;
      await this.store.recordSubmission(actor.userId, request.kind, quotaDay(now), now);
      return info;
    });
    this.submitChain = run.catch(() => {});
    return run;
  }

  async admit(kind: KindOf<KM>, actor: Actor): Promise<void> {
    if (this.closing) throw new UserError('the job queue is shutting down', 'try again in a minute');
    if (!this.options.kinds[kind]) throw new UnknownKindError(kind, Object.keys(this.options.kinds));
    await this.submitChain;
    const now = Date.now();
    checkSubmit(this.options.policy, kind, actor, await this.submitSnapshot(kind, actor, now));
  }

  /** What the policy needs to know about the queue, the actor and their server right now. */
  private async submitSnapshot(kind: string, actor: Actor, now: number): Promise<SubmitSnapshot> {
    const usage = await this.store.usageOf(actor.userId, quotaDay(now));
    const active = [...this.active.values()];
    const mine = active.filter((record) => record.userId === actor.userId);
    return {
      queuedTotal: await this.queuedCount(),
      userActive: mine.length,
      serverActive:
        actor.guildId === undefined
          ? undefined
          : active.filter((record) => serverOf(record) === actor.guildId).length,
      userActiveOfKind: mine.filter((record) => record.kind === kind).length,
      userLastSubmitAt: usage.lastAt[kind],
      userSubmittedToday: usage.counts[kind] ?? 0,
      now,
    };
  }

  async get(id: string): Promise<JobInfo<KM> | undefined> {
    return this.peek(id);
  }

  /** The job as this process knows it, without asking the backend. */
  protected async peek(id: string): Promise<JobInfo<KM> | undefined> {
    const record = this.active.get(id) ?? (await this.store.get(id));
    return record && this.info(record);
  }

  async list(filter: JobFilter = {}): Promise<Array<JobInfo<KM>>> {
    const records = new Map<string, JobRecord>();
    // Unfinished jobs are all in memory; only history needs the store (which can be large).
    const unfinishedOnly = filter.status?.every((status) => status === 'queued' || status === 'running');
    if (!unfinishedOnly) for (const record of await this.store.all()) records.set(record.id, record);
    for (const record of this.active.values()) records.set(record.id, record);
    const placements = this.placements();
    return selectJobs(records.values(), filter).map((record) => this.info(record, placements));
  }

  async cancel(id: string, actor: Actor): Promise<JobInfo<KM>> {
    const record = this.active.get(id) ?? (await this.store.get(id));
    if (!record) throw new JobNotFoundError(id);
    assertMayCancel(actor, record);
    if (isTerminal(record.status)) {
      if (record.status === 'cancelled') return this.info(record);
      throw new JobAlreadyFinishedError(`job ${id} already ${record.status}`);
    }
    await this.cancelUnfinished(this.active.get(id) ?? record, cancelledByLabel(actor, record));
    return (await this.get(id))!;
  }

  subscribe(listener: (event: JobEvent<KM>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  waitFor(id: string, options: { timeoutMs?: number } = {}): Promise<JobInfo<KM>> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (error?: Error, job?: JobInfo<KM>) => {
        if (done) return;
        done = true;
        unsubscribe();
        clearTimeout(timer);
        clearInterval(poll);
        if (error) reject(error);
        else resolve(job!);
      };
      const unsubscribe = this.subscribe((event) => {
        if (event.job.id === id && isTerminal(event.job.status)) finish(undefined, event.job);
      });
      const check = () =>
        this.peek(id).then(
          (job) => {
            if (!job) finish(new JobNotFoundError(id));
            else if (isTerminal(job.status)) finish(undefined, job);
          },
          () => {},
        );
      // Events cover the normal case; the poll covers a job finished before we subscribed.
      const poll = setInterval(check, 2_000);
      const timer = setTimeout(
        () => finish(new Error(`job ${id} did not finish within ${options.timeoutMs} ms`)),
        options.timeoutMs ?? 2 ** 31 - 1,
      );
      void check();
    });
  }

  async stats(): Promise<QueueStats> {
    const workers = this.workersByLane();
    const lanes = Object.fromEntries(
      LANES.map((lane) => {
        const jobs = [...this.active.values()].filter((record) => record.lane === lane);
        return [
          lane,
          {
            queued: jobs.filter((record) => record.status === 'queued').length,
            running: jobs.filter((record) => record.status === 'running').length,
            workers: workers[lane] ?? 0,
          },
        ];
      }),
    ) as QueueStats['lanes'];
    return { backend: this.backend, lanes, secondsPerUnit: this.averages.all() };
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.cleanupTask?.destroy();
    await this.closeBackend();
    await this.store.close();
  }

  // --- transitions, for subclasses ----------------------------------------------------------

  protected placements() {
    return placeJobs(this.active.values(), this.averages, this.workersByLane(), Date.now());
  }

  protected info(record: JobRecord, placements = this.placements()): JobInfo<KM> {
    return jobInfo<KM>(record, placements);
  }

  protected note(record: JobRecord, event: string): void {
    record.history.push({ at: Date.now(), event });
    if (record.history.length > MAX_HISTORY) record.history.splice(0, record.history.length - MAX_HISTORY);
  }

  /**
   * Applies a state change: on a copy first, stored (with retries), and only then to the record,
   * the in-memory view and the listeners (`type` once per transition). When the store refuses it,
   * it throws `StoreWriteError` and nothing changed: the caller must not act on the change (start,
   * acknowledge, report the job) and tries again later, so a job is neither lost nor run twice.
   */
  protected async commit(
    record: JobRecord,
    type: JobEventType,
    change: (next: JobRecord) => void,
    reason?: string,
  ): Promise<void> {
    const next = structuredClone(record);
    change(next);
    await this.persist(next);
    Object.assign(record, next);
    if (isTerminal(record.status)) {
      this.active.delete(record.id);
      this.progressSavedAt.delete(record.id);
    } else {
      this.active.set(record.id, record);
    }
    this.emit(type, record, reason);
  }

  /** Writes a record, riding out a short store outage; `StoreWriteError` once it gives up. */
  protected persist(record: JobRecord): Promise<void> {
    return writeJobRecord(this.store, record, this.log, this.options.storeRetryDelaysMs);
  }

  /** Adopts a job another process submitted: stored as it is, then reported as queued. */
  protected async adopt(record: JobRecord): Promise<void> {
    await this.commit(record, 'queued', () => {});
  }

  protected async markStarted(record: JobRecord, attempt: number, worker: string | undefined, at: number) {
    await this.commit(record, 'started', (next) => {
      next.status = 'running';
      next.attempt = attempt;
      next.startedAt = at;
      next.worker = worker;
      next.progress = undefined;
      this.note(next, `attempt ${attempt} started${worker ? ` on ${worker}` : ''}`);
    });
  }

  /** Back to the queue; `refund` takes back the attempt (the run was cut short by a planned stop). */
  protected async markRequeued(record: JobRecord, reason: string, refund = false): Promise<void> {
    await this.commit(
      record,
      'requeued',
      (next) => {
        next.status = 'queued';
        next.progress = undefined;
        if (refund) next.attempt = Math.max(0, next.attempt - 1);
        this.note(next, `back in the queue: ${reason}`);
      },
      reason,
    );
  }

  protected async markCompleted(record: JobRecord, result: unknown, busyMs: number, batchSize: number) {
    await this.commit(record, 'completed', (next) => {
      next.status = 'completed';
      next.result = result;
      next.busyMs = busyMs;
      next.batchSize = batchSize > 1 ? batchSize : undefined;
      next.finishedAt = Date.now();
      this.note(next, batchSize > 1 ? `completed in a batch of ${batchSize}` : 'completed');
    });
    const entry = this.averages.record(record.kind, busyMs / 1000, record.units);
    // Averages only steer ETAs: a lost one costs nothing that matters.
    await this.store
      .saveAverage(record.kind, entry)
      .catch((err) => this.log.warn('could not store a duration average', { error: (err as Error).message }));
  }

  /** Ends a job as failed, or as cancelled when the failure says so. */
  protected async markFailed(record: JobRecord, failure: JobFailure, busyMs?: number): Promise<void> {
    const status = failure.code === 'cancelled' ? 'cancelled' : 'failed';
    await this.commit(
      record,
      status,
      (next) => {
        next.status = status;
        next.failure = failure;
        next.busyMs = busyMs ?? next.busyMs;
        next.finishedAt = Date.now();
        this.note(next, `${status}: ${failure.message}`);
      },
      failure.message,
    );
  }

  protected updateProgress(record: JobRecord, progress: JobProgress): void {
    if (record.status !== 'running') return;
    record.progress = progress;
    this.emit('progress', record);
    const now = Date.now();
    if (now - (this.progressSavedAt.get(record.id) ?? 0) >= PROGRESS_PERSIST_MS) {
      this.progressSavedAt.set(record.id, now);
      this.store.put(record).catch(() => {});
    }
  }

  private emit(type: JobEventType, record: JobRecord, reason?: string): void {
    if (type !== 'progress') {
      const key =
        type === 'started' || type === 'requeued'
          ? `${record.id}:${type}:${record.attempt}`
          : `${record.id}:${type}`;
      if (!this.emitted.add(key)) return;
    }
    if (this.listeners.size === 0) return;
    const event: JobEvent<KM> = { type, job: this.info(record), at: Date.now(), reason };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.log.error('a job event listener threw', { type, error: (err as Error).message });
      }
    }
  }
}
