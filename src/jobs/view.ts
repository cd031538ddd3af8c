// The operators' view of the queue (`facestyle jobs`), from a process that does not run it. With
// BullMQ it is an ordinary queue client without workers. With the embedded queue it reads the
// store, and cancellations are requests the owning bot applies within a second, or when it starts.

import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { logger } from '../log.ts';
import { ArtifactStore } from '../store/artifacts.ts';
import { BullJobQueue } from './bullmq/queue.ts';
import type { JobSystemConfig } from './config.ts';
import { JobAlreadyFinishedError, JobNotFoundError } from './errors.ts';
import { type DurationAverages, placeJobs } from './eta.ts';
import { durationAverages, jobInfo, selectJobs } from './job-info.ts';
import { JobStore } from './job-store.ts';
import { type JobKinds, KIND_SPECS, type KindMap, type KindSpecs } from './kinds.ts';
import { assertMayCancel } from './policy.ts';
import { cancelledByLabel } from './queue-core.ts';
import { type Actor, isTerminal, type JobFilter, type JobInfo, type JobRecord } from './types.ts';

export interface CancelOutcome<KM extends KindMap = JobKinds> {
  job: JobInfo<KM>;
  /** True when the cancellation is recorded but not applied yet (the bot is not running). */
  pending: boolean;
}

export interface JobView<KM extends KindMap = JobKinds> {
  readonly backend: 'embedded' | 'bullmq';
  list(filter?: JobFilter): Promise<Array<JobInfo<KM>>>;
  get(id: string): Promise<JobInfo<KM> | undefined>;
  cancel(id: string, actor: Actor): Promise<CancelOutcome<KM>>;
  close(): Promise<void>;
}

/** An owner lease older than this means the bot is not running. */
const LEASE_STALE_MS = 15_000;

class StoreJobView<KM extends KindMap> implements JobView<KM> {
  readonly backend = 'embedded' as const;

  constructor(
    private readonly store: JobStore,
    private readonly averages: DurationAverages,
  ) {}

  private async info(records: JobRecord[], all?: JobRecord[]): Promise<Array<JobInfo<KM>>> {
    const unfinished = all ?? (await this.store.unfinished());
    // The view cannot know the bot's lane settings; one batch per lane is the default.
    const placements = placeJobs(unfinished, this.averages, { short: 1, long: 1 }, Date.now());
    return records.map((record) => jobInfo<KM>(record, placements));
  }

  async list(filter: JobFilter = {}): Promise<Array<JobInfo<KM>>> {
    const all = await this.store.all();
    return this.info(
      selectJobs(all, filter),
      all.filter((record) => !isTerminal(record.status)),
    );
  }

  async get(id: string): Promise<JobInfo<KM> | undefined> {
    const record = await this.store.get(id);
    return record && (await this.info([record]))[0];
  }

  async cancel(id: string, actor: Actor): Promise<CancelOutcome<KM>> {
    const record = await this.store.get(id);
    if (!record) throw new JobNotFoundError(id);
    assertMayCancel(actor, record);
    if (isTerminal(record.status)) {
      if (record.status === 'cancelled') return { job: (await this.info([record]))[0], pending: false };
      throw new JobAlreadyFinishedError(`job ${id} already ${record.status}`);
    }
    await this.store.requestCancel({ id, by: cancelledByLabel(actor, record), at: Date.now() });
    const lease = await this.store.owner();
    if (lease && Date.now() - lease.renewedAt < LEASE_STALE_MS) {
      for (let waited = 0; waited < 20_000; waited += 200) {
        const now = await this.store.get(id);
        if (now && isTerminal(now.status)) return { job: (await this.info([now]))[0], pending: false };
        await sleep(200);
      }
    }
    return { job: (await this.info([record]))[0], pending: true };
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

class BullJobView<KM extends KindMap> implements JobView<KM> {
  readonly backend = 'bullmq' as const;

  constructor(private readonly queue: BullJobQueue<KM>) {}

  list(filter?: JobFilter) {
    return this.queue.list(filter);
  }

  get(id: string) {
    return this.queue.get(id);
  }

  async cancel(id: string, actor: Actor): Promise<CancelOutcome<KM>> {
    const job = await this.queue.cancel(id, actor);
    return { job, pending: !isTerminal(job.status) };
  }

  close() {
    return this.queue.close();
  }
}

export async function openJobView<KM extends KindMap = JobKinds>(
  config: JobSystemConfig,
  kinds: KindSpecs<KM> = KIND_SPECS as unknown as KindSpecs<KM>,
): Promise<JobView<KM>> {
  const store = await JobStore.open(config.storeUrl, config.prefix);
  if (config.queueUrl) {
    const queue = await BullJobQueue.open<KM>(
      {
        store,
        artifacts: new ArtifactStore(join(config.dataDir, 'artifacts')),
        policy: config.policy,
        kinds,
        log: logger('jobs'),
      },
      { url: config.queueUrl, prefix: config.prefix, dataDir: config.dataDir, events: false },
    );
    return new BullJobView(queue);
  }
  return new StoreJobView<KM>(store, durationAverages(kinds, await store.averages()));
}
