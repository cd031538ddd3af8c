// Job output files on disk: one folder per job under <dataDir>/artifacts, kept within an age and a
// total-size limit by a cleanup that node-cron runs on a schedule. Folders of unfinished jobs stay.
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import cron, { type ScheduledTask } from 'node-cron';
import { UserError } from '../errors.ts';
import { type Logger, logger } from '../log.ts';

export interface ArtifactLimits {
  /** Total size of all job folders. */
  maxBytes: number;
  /** Folders untouched for longer are removed. */
  maxAgeMs: number;
}

export const DEFAULT_ARTIFACT_LIMITS: ArtifactLimits = {
  maxBytes: 20 * 2 ** 30,
  maxAgeMs: 30 * 24 * 3600_000,
};
/** Every hour, at minute 17 (off the hour, when other cron jobs pile up). */
export const DEFAULT_CLEANUP_SCHEDULE = '17 * * * *';

export interface ArtifactEntry {
  name: string;
  path: string;
  bytes: number;
  /** Newest modification inside the folder. */
  modifiedAt: number;
}

export interface PruneReport {
  removed: string[];
  freedBytes: number;
  remainingBytes: number;
}

async function measure(path: string): Promise<{ bytes: number; modifiedAt: number }> {
  const info = await lstat(path);
  if (!info.isDirectory()) return { bytes: info.size, modifiedAt: info.mtimeMs };
  let bytes = 0;
  let modifiedAt = info.mtimeMs;
  for (const name of await readdir(path)) {
    const inner = await measure(join(path, name));
    bytes += inner.bytes;
    modifiedAt = Math.max(modifiedAt, inner.modifiedAt);
  }
  return { bytes, modifiedAt };
}

export class ArtifactStore {
  private readonly log: Logger;

  constructor(
    readonly root: string,
    log?: Logger,
  ) {
    this.log = log ?? logger('artifacts');
  }

  dirFor(jobId: string): string {
    return join(this.root, jobId);
  }

  async entries(): Promise<ArtifactEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: ArtifactEntry[] = [];
    for (const name of names) {
      const path = join(this.root, name);
      try {
        out.push({ name, path, ...(await measure(path)) });
      } catch (err) {
        // Removed while we looked (a concurrent prune): nothing to account for.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return out;
  }

  /**
   * Removes folders older than the age limit, then the oldest ones until the total fits the size
   * limit. `keep` protects folders in use (jobs still queued or running).
   */
  async prune(
    limits: ArtifactLimits,
    keep: (entry: ArtifactEntry) => boolean = () => false,
    now = Date.now(),
  ): Promise<PruneReport> {
    const entries = (await this.entries()).sort((a, b) => a.modifiedAt - b.modifiedAt);
    let total = entries.reduce((sum, entry) => sum + entry.bytes, 0);
    const removed: string[] = [];
    let freedBytes = 0;
    for (const entry of entries) {
      if (keep(entry)) continue;
      const tooOld = now - entry.modifiedAt > limits.maxAgeMs;
      if (!tooOld && total <= limits.maxBytes) continue;
      await rm(entry.path, { recursive: true, force: true });
      removed.push(entry.name);
      freedBytes += entry.bytes;
      total -= entry.bytes;
    }
    if (removed.length)
      this.log.info('pruned artifacts', { removed: removed.length, freedBytes, remainingBytes: total });
    return { removed, freedBytes, remainingBytes: total };
  }

  /** Runs `prune` on a cron schedule; stop the returned task on shutdown. */
  schedule(
    expression: string,
    limits: ArtifactLimits,
    keep: (entry: ArtifactEntry) => boolean,
  ): ScheduledTask {
    return scheduleCleanup(expression, 'artifact cleanup', async () => {
      await this.prune(limits, keep);
    });
  }
}

/** A cron task that logs its failures instead of throwing them into node-cron. */
export function scheduleCleanup(expression: string, name: string, run: () => Promise<void>): ScheduledTask {
  if (!cron.validate(expression)) {
    throw new UserError(
      `invalid cron schedule "${expression}" for ${name}`,
      'e.g. "17 * * * *" = hourly at :17',
    );
  }
  const log = logger('cron');
  return cron.schedule(
    expression,
    async () => {
      try {
        await run();
      } catch (err) {
        log.error(`${name} failed`, { error: (err as Error).message });
      }
    },
    { name, noOverlap: true },
  );
}
