// In-memory services for bot tests: a job queue whose jobs the test moves along (start, progress,
// complete, fail) with the real queue's rules (kind validation, positions, owner-only cancel, events
// for every change), a model catalogue and a dataset intake that records what it was given.
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type {
  BotJobs,
  DatasetIntake,
  ImportedDataset,
  ImportOptions,
  ModelCatalog,
  ModelSummary,
} from '../../../src/bot/services.ts';
import { UserError } from '../../../src/errors.ts';
import { JobAlreadyFinishedError, JobNotFoundError } from '../../../src/jobs/errors.ts';
import { type JobKinds, KIND_SPECS, type KindOf } from '../../../src/jobs/kinds.ts';
import { assertMayCancel, checkSubmit, type QueuePolicy, serverOf } from '../../../src/jobs/policy.ts';
import type {
  Actor,
  JobEvent,
  JobEventType,
  JobFailure,
  JobFilter,
  JobInfo,
  JobInfoOf,
  ProgressUpdate,
  QueueStats,
  SubmitRequest,
} from '../../../src/jobs/types.ts';
import { isTerminal } from '../../../src/jobs/types.ts';

let sequence = 0;

export class MemoryJobs implements BotJobs {
  readonly jobs = new Map<string, JobInfo>();
  private readonly listeners = new Set<(event: JobEvent) => void>();
  /** Throws this from the next submit (e.g. a QuotaExceededError), once. */
  failNextSubmit?: Error;
  /** Quotas and caps, applied with the real queue's rules; absent: none, so tests submit freely. */
  policy?: QueuePolicy;
  /** Actors that `admit` or `submit` were asked about, in order. */
  readonly admitted: Actor[] = [];
  private readonly submissions: Array<{ userId: string; kind: string; at: number }> = [];

  async admit(kind: KindOf<JobKinds>, actor: Actor): Promise<void> {
    this.admitted.push(actor);
    if (!this.policy) return;
    const now = Date.now();
    const active = [...this.jobs.values()].filter((job) => !isTerminal(job.status));
    const mine = active.filter((job) => job.userId === actor.userId);
    const submitted = this.submissions.filter((s) => s.userId === actor.userId && s.kind === kind);
    checkSubmit(this.policy, kind, actor, {
      queuedTotal: active.filter((job) => job.status === 'queued').length,
      userActive: mine.length,
      serverActive: active.filter((job) => serverOf(job) === actor.guildId).length,
      userActiveOfKind: mine.filter((job) => job.kind === kind).length,
      userLastSubmitAt: submitted.at(-1)?.at,
      userSubmittedToday: submitted.length,
      now,
    });
  }

  async submit<K extends KindOf<JobKinds>>(
    request: SubmitRequest<JobKinds, K>,
  ): Promise<JobInfoOf<JobKinds, K>> {
    if (this.failNextSubmit) {
      const err = this.failNextSubmit;
      this.failNextSubmit = undefined;
      throw err;
    }
    const spec = KIND_SPECS[request.kind];
    const payload = spec.validate(request.payload);
    await this.admit(request.kind, request.actor);
    this.submissions.push({ userId: request.actor.userId, kind: request.kind, at: Date.now() });
    const id = `j${(++sequence).toString(36).padStart(4, '0')}${Date.now().toString(36)}`;
    const job = {
      id,
      kind: request.kind,
      lane: spec.lane,
      priority: spec.priority,
      status: 'queued',
      payload,
      userId: request.actor.userId,
      meta: { ...request.meta, ...(request.actor.guildId ? { guildId: request.actor.guildId } : {}) },
      createdAt: Date.now(),
      attempt: 0,
      maxAttempts: spec.maxAttempts,
      timeLimitMs: spec.timeLimitMs,
      units: spec.units(payload as never),
      history: [],
      position: null,
      etaSeconds: null,
    } as unknown as JobInfo;
    this.jobs.set(id, job);
    this.emit('queued', job);
    return this.snapshot(job) as JobInfoOf<JobKinds, K>;
  }

  async get(id: string): Promise<JobInfo | undefined> {
    const job = this.jobs.get(id);
    return job ? this.snapshot(job) : undefined;
  }

  async list(filter: JobFilter = {}): Promise<JobInfo[]> {
    return [...this.jobs.values()]
      .filter((job) => !filter.status || filter.status.includes(job.status))
      .filter((job) => !filter.userId || job.userId === filter.userId)
      .filter((job) => !filter.kind || job.kind === filter.kind)
      .reverse()
      .slice(0, filter.limit ?? 50)
      .map((job) => this.snapshot(job));
  }

  async cancel(id: string, actor: Actor): Promise<JobInfo> {
    const job = this.require(id);
    assertMayCancel(actor, job);
    if (isTerminal(job.status)) throw new JobAlreadyFinishedError(`job ${id} already ended (${job.status})`);
    job.status = 'cancelled';
    job.failure = { code: 'cancelled', message: `cancelled by ${actor.userId}` };
    job.finishedAt = Date.now();
    this.emit('cancelled', job);
    return this.snapshot(job);
  }

  subscribe(listener: (event: JobEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async stats(): Promise<QueueStats> {
    const count = (lane: string, status: string) =>
      [...this.jobs.values()].filter((j) => j.lane === lane && j.status === status).length;
    return {
      backend: 'embedded',
      lanes: {
        short: { queued: count('short', 'queued'), running: count('short', 'running'), workers: 1 },
        long: { queued: count('long', 'queued'), running: count('long', 'running'), workers: 1 },
      },
      secondsPerUnit: {},
    };
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  // ---- what a worker would do ----

  start(id: string): void {
    const job = this.require(id);
    job.status = 'running';
    job.startedAt = Date.now();
    job.attempt++;
    this.emit('started', job);
  }

  progress(id: string, update: ProgressUpdate): void {
    const job = this.require(id);
    job.progress = { ...update, at: Date.now() };
    this.emit('progress', job);
  }

  complete(id: string, result: unknown): void {
    const job = this.require(id);
    job.status = 'completed';
    (job as { result?: unknown }).result = result;
    job.finishedAt = Date.now();
    this.emit('completed', job);
  }

  fail(id: string, failure: JobFailure): void {
    const job = this.require(id);
    job.status = 'failed';
    job.failure = failure;
    job.finishedAt = Date.now();
    this.emit('failed', job);
  }

  private require(id: string): JobInfo {
    const job = this.jobs.get(id);
    if (!job) throw new JobNotFoundError(id);
    return job;
  }

  /** The job with its place in its lane and an ETA, as the real queue reports them. */
  private snapshot(job: JobInfo): JobInfo {
    const queued = [...this.jobs.values()].filter((j) => j.lane === job.lane && j.status === 'queued');
    const position = job.status === 'queued' ? queued.findIndex((j) => j.id === job.id) + 1 : null;
    const perUnit = KIND_SPECS[job.kind].defaultSecondsPerUnit;
    const etaSeconds = isTerminal(job.status)
      ? null
      : job.status === 'running'
        ? Math.round(job.units * perUnit * (1 - (job.progress?.fraction ?? 0)))
        : Math.round(job.units * perUnit * (position ?? 1));
    return structuredClone({ ...job, position, etaSeconds });
  }

  private emit(type: JobEventType, job: JobInfo): void {
    const event: JobEvent = { type, job: this.snapshot(job), at: Date.now() };
    for (const listener of this.listeners) listener(event);
  }
}

export class MemoryCatalog implements ModelCatalog {
  constructor(
    readonly models: ModelSummary[],
    private readonly dataDir: string,
    private readonly defaultName: string | undefined = models.find((m) => m.kind === 'base')?.name,
  ) {}

  async list(): Promise<ModelSummary[]> {
    return structuredClone(this.models);
  }

  async defaultModel(): Promise<string | undefined> {
    return this.defaultName;
  }

  async snapshot(model: string, epoch?: number): Promise<string> {
    const found = this.models.find((m) => m.name === model);
    const epochs = found?.snapshots ?? [];
    const chosen = epoch ?? epochs.at(-1);
    if (chosen === undefined || !epochs.includes(chosen)) {
      throw new UserError(
        `${model} has no snapshot at epoch ${epoch}`,
        `snapshots: ${epochs.join(', ') || 'none'}`,
      );
    }
    return join(this.dataDir, 'runs', model, `epoch-${chosen}.safetensors`);
  }

  async reserveRunDir(name: string): Promise<string> {
    const dir = join(this.dataDir, 'runs', name);
    mkdirSync(join(this.dataDir, 'runs'), { recursive: true });
    try {
      mkdirSync(dir);
    } catch {
      throw new UserError(`a model called "${name}" already exists`);
    }
    return dir;
  }
}

export class RecordingDatasets implements DatasetIntake {
  readonly imported: Array<{
    archivePath: string;
    name: string;
    resolution: number;
    align?: string;
    bytes: number;
  }> = [];

  constructor(
    private readonly dataDir: string,
    /** What the contact sheet of every import holds. */
    readonly contactSheetPng: Buffer,
  ) {}

  async importArchive(archivePath: string, options: ImportOptions): Promise<ImportedDataset> {
    this.imported.push({
      archivePath,
      name: options.name,
      resolution: options.resolution,
      align: options.align,
      bytes: statSync(archivePath).size,
    });
    const datasetDir = join(this.dataDir, 'datasets', options.name);
    mkdirSync(datasetDir, { recursive: true });
    const contactSheet = join(datasetDir, 'contact-sheet.png');
    writeFileSync(contactSheet, this.contactSheetPng);
    return {
      datasetDir,
      images: 120,
      skipped: 3,
      keptBy: { faces: 100, center: 20 },
      notUsed: 'no face found: 2, duplicates: 1',
      contactSheet,
    };
  }
}
