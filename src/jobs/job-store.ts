// Durable job metadata: job records and results, duration averages for ETAs, per-user usage for
// quotas, and the small coordination records of the embedded queue (owner lease, cancel requests
// from the CLI). Writes to one key are applied in call order.
import { hostname } from 'node:os';
import type Keyv from 'keyv';
import { UserError } from '../errors.ts';
import { closeKeyv, entriesOf, openKeyv, redactUrl, tuneSqlite } from '../store/keyv.ts';
import type { AverageEntry } from './eta.ts';
import type { JobRecord } from './types.ts';
import { isTerminal } from './types.ts';

/** One user's submissions on one UTC day, and the time of their last submission per kind. */
export interface UserUsage {
  day: string;
  counts: Record<string, number>;
  lastAt: Record<string, number>;
}

export interface CancelRequest {
  id: string;
  by: string;
  at: number;
}

/** Who runs the embedded queue on a store; renewed while it runs. */
export interface OwnerLease {
  host: string;
  pid: number;
  renewedAt: number;
}

const OPEN_TIMEOUT_MS = 10_000;

export class JobStore {
  private readonly chains = new Map<string, Promise<unknown>>();

  private constructor(
    private readonly jobs: Keyv<JobRecord>,
    private readonly meta: Keyv<unknown>,
    private readonly cancels: Keyv<CancelRequest>,
    private readonly usage: Keyv<UserUsage>,
  ) {}

  /** `namespace` separates deployments (or test runs) sharing one database. */
  static async open(url: string, namespace = 'facestyle'): Promise<JobStore> {
    const store = new JobStore(
      openKeyv<JobRecord>(url, `${namespace}-jobs`),
      openKeyv<unknown>(url, `${namespace}-jobmeta`),
      openKeyv<CancelRequest>(url, `${namespace}-jobcancel`),
      openKeyv<UserUsage>(url, `${namespace}-jobusage`),
    );
    // Fail at open, clearly, rather than at the first job (or never: a Redis store retries forever).
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        (async () => {
          await tuneSqlite(store.jobs);
          await store.meta.get('probe');
        })(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${OPEN_TIMEOUT_MS / 1000} s`)),
            OPEN_TIMEOUT_MS,
          );
        }),
      ]);
    } catch (err) {
      void store.close().catch(() => {});
      throw new UserError(
        `cannot open the job store at ${redactUrl(url)}: ${(err as Error).message}`,
        'check FACESTYLE_STORE_URL and that its server runs',
      );
    } finally {
      clearTimeout(timer);
    }
    return store;
  }

  /** Runs `write` after every earlier write to `key` settled. */
  private serial<T>(key: string, write: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous.then(write, write);
    const tail = next.catch(() => {});
    this.chains.set(key, tail);
    void tail.then(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    });
    return next;
  }

  async get(id: string): Promise<JobRecord | undefined> {
    // Read after the writes already issued for this job, never an older state.
    await this.chains.get(`job:${id}`);
    return (await this.jobs.get(id)) ?? undefined;
  }

  put(record: JobRecord): Promise<void> {
    const copy = structuredClone(record);
    return this.serial(`job:${record.id}`, async () => {
      await this.jobs.set(record.id, copy);
    });
  }

  delete(id: string): Promise<void> {
    return this.serial(`job:${id}`, async () => {
      await this.jobs.delete(id);
    });
  }

  async all(): Promise<JobRecord[]> {
    const seen = new Map<string, JobRecord>();
    for (const [, record] of await entriesOf(this.jobs)) seen.set(record.id, record);
    return [...seen.values()];
  }

  async unfinished(): Promise<JobRecord[]> {
    return (await this.all()).filter((record) => !isTerminal(record.status));
  }

  /** Deletes records of jobs that ended before `before` (ms since epoch); returns how many. */
  async pruneFinished(before: number): Promise<number> {
    const old = (await this.all()).filter(
      (record) => isTerminal(record.status) && (record.finishedAt ?? record.createdAt) < before,
    );
    for (const record of old) await this.delete(record.id);
    return old.length;
  }

  async averages(): Promise<Record<string, AverageEntry>> {
    return ((await this.meta.get('averages')) as Record<string, AverageEntry> | undefined) ?? {};
  }

  saveAverage(kind: string, entry: AverageEntry): Promise<void> {
    return this.serial('meta:averages', async () => {
      const all = await this.averages();
      all[kind] = entry;
      await this.meta.set('averages', all);
    });
  }

  async usageOf(userId: string, day: string): Promise<UserUsage> {
    const usage = await this.usage.get(userId);
    // Counts are per day; the last-submission times carry over (a cooldown spans midnight).
    if (!usage) return { day, counts: {}, lastAt: {} };
    return usage.day === day ? usage : { day, counts: {}, lastAt: usage.lastAt };
  }

  recordSubmission(userId: string, kind: string, day: string, at: number): Promise<void> {
    return this.serial(`usage:${userId}`, async () => {
      const usage = await this.usageOf(userId, day);
      usage.counts[kind] = (usage.counts[kind] ?? 0) + 1;
      usage.lastAt[kind] = at;
      await this.usage.set(userId, usage);
    });
  }

  requestCancel(request: CancelRequest): Promise<void> {
    return this.serial(`cancel:${request.id}`, async () => {
      await this.cancels.set(request.id, request);
    });
  }

  async cancelRequests(): Promise<CancelRequest[]> {
    return (await entriesOf(this.cancels)).map(([, request]) => request);
  }

  clearCancelRequest(id: string): Promise<void> {
    return this.serial(`cancel:${id}`, async () => {
      await this.cancels.delete(id);
    });
  }

  async owner(): Promise<OwnerLease | undefined> {
    return (await this.meta.get('owner')) as OwnerLease | undefined;
  }

  renewOwner(): Promise<void> {
    return this.serial('meta:owner', async () => {
      await this.meta.set('owner', {
        host: hostname(),
        pid: process.pid,
        renewedAt: Date.now(),
      } satisfies OwnerLease);
    });
  }

  releaseOwner(): Promise<void> {
    return this.serial('meta:owner', async () => {
      const lease = (await this.meta.get('owner')) as OwnerLease | undefined;
      if (lease?.pid === process.pid && lease.host === hostname()) await this.meta.delete('owner');
    });
  }

  /** Deletes everything this store holds (its namespaces only). */
  async destroy(): Promise<void> {
    await Promise.allSettled([...this.chains.values()]);
    await Promise.all([this.jobs, this.meta, this.cancels, this.usage].map((keyv) => keyv.clear()));
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.chains.values()]);
    for (const keyv of [this.jobs, this.meta, this.cancels, this.usage]) await closeKeyv(keyv as Keyv);
  }
}
