// Writing a job's state: a change the store refuses did not happen. Short outages (a locked
// database, a Redis failover) are ridden out with a few retries; past them the caller gets a
// `StoreWriteError` and must not act on the change (start the job, acknowledge its outcome).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.ts';
import type { JobStore } from './job-store.ts';
import type { JobRecord } from './types.ts';

/** About 3 s of tries in all. */
export const STORE_RETRY_DELAYS_MS: readonly number[] = [100, 200, 400, 800, 1_600];

/** A job state change the store would not take: the change did not happen, and must not be acted on. */
export class StoreWriteError extends Error {
  override name = 'StoreWriteError';
  constructor(
    readonly jobId: string,
    cause: unknown,
  ) {
    super(
      `could not store the state of job ${jobId}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
}

export async function writeJobRecord(
  store: JobStore,
  record: JobRecord,
  log: Logger,
  delays: readonly number[] = STORE_RETRY_DELAYS_MS,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await store.put(record);
      return;
    } catch (err) {
      if (attempt >= delays.length) throw new StoreWriteError(record.id, err);
      log.warn('could not store a job state change; retrying', {
        jobId: record.id,
        status: record.status,
        error: (err as Error).message,
      });
      await sleep(delays[attempt]);
    }
  }
}
