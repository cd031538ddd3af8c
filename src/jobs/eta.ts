// Queue positions and ETAs: durations are learned per kind as seconds per work unit (image,
// epoch), and a lane's queue is played forward over its workers in the order they take jobs.
import type { Lane } from './kinds.ts';
import type { JobRecord } from './types.ts';

export interface AverageEntry {
  /** Seconds per unit. */
  mean: number;
  samples: number;
}

/**
 * A moving average that starts as the plain mean (so the first few jobs already count fully) and
 * turns into an exponential one after `window` samples, following drift (a warmer cache, a new GPU).
 */
export class DurationAverages {
  private readonly entries = new Map<string, AverageEntry>();

  constructor(
    private readonly defaults: Record<string, number>,
    initial: Record<string, AverageEntry> = {},
    private readonly window = 10,
  ) {
    for (const [kind, entry] of Object.entries(initial)) this.entries.set(kind, entry);
  }

  secondsPerUnit(kind: string): number {
    return this.entries.get(kind)?.mean ?? this.defaults[kind] ?? 1;
  }

  /** Adds one finished job; returns the kind's new entry (for persisting). */
  record(kind: string, seconds: number, units: number): AverageEntry {
    const perUnit = seconds / Math.max(units, 1);
    const prev = this.entries.get(kind);
    const samples = (prev?.samples ?? 0) + 1;
    const mean = prev ? prev.mean + (perUnit - prev.mean) / Math.min(samples, this.window) : perUnit;
    const entry = { mean, samples };
    this.entries.set(kind, entry);
    return entry;
  }

  load(kind: string, entry: AverageEntry): void {
    this.entries.set(kind, entry);
  }

  all(): Record<string, number> {
    const out: Record<string, number> = { ...this.defaults };
    for (const [kind, entry] of this.entries) out[kind] = entry.mean;
    return out;
  }
}

/** The order in which a lane's queued jobs start: priority, then age (a retried job keeps its age). */
export function compareQueued(a: JobRecord, b: JobRecord): number {
  return a.priority - b.priority || a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export interface Placement {
  position: number | null;
  etaSeconds: number | null;
}

function expectedSeconds(job: JobRecord, averages: DurationAverages): number {
  return averages.secondsPerUnit(job.kind) * Math.max(job.units, 1);
}

/** Seconds a running job still needs: its own estimate, else its progress rate, else the average. */
export function remainingSeconds(job: JobRecord, averages: DurationAverages, now: number): number {
  const expected = expectedSeconds(job, averages);
  const elapsed = Math.max(0, (now - (job.startedAt ?? now)) / 1000);
  const progress = job.progress;
  if (progress?.etaSeconds !== undefined) {
    return Math.max(0, progress.etaSeconds - (now - progress.at) / 1000);
  }
  if (progress && progress.fraction > 0.02) {
    return (elapsed * (1 - progress.fraction)) / progress.fraction;
  }
  // Running longer than usual: it is still not done, so assume a little more rather than zero.
  return Math.max(expected - elapsed, 0.1 * expected);
}

/** Position and ETA of every unfinished job in `jobs` (any lanes; finished ones are ignored). */
export function placeJobs(
  jobs: Iterable<JobRecord>,
  averages: DurationAverages,
  workersByLane: Partial<Record<Lane, number>>,
  now: number,
): Map<string, Placement> {
  const byLane = new Map<Lane, { running: JobRecord[]; queued: JobRecord[] }>();
  for (const job of jobs) {
    if (job.status !== 'queued' && job.status !== 'running') continue;
    let lane = byLane.get(job.lane);
    if (!lane) {
      lane = { running: [], queued: [] };
      byLane.set(job.lane, lane);
    }
    (job.status === 'running' ? lane.running : lane.queued).push(job);
  }
  const out = new Map<string, Placement>();
  for (const [lane, { running, queued }] of byLane) {
    // Each slot is the time a worker becomes free; the next queued job goes to the earliest one.
    const slots = running.map((job) => {
      const left = remainingSeconds(job, averages, now);
      out.set(job.id, { position: null, etaSeconds: left });
      return left;
    });
    const workers = Math.max(1, workersByLane[lane] ?? 1);
    while (slots.length < workers) slots.push(0);
    queued.sort(compareQueued);
    queued.forEach((job, index) => {
      let earliest = 0;
      for (let i = 1; i < slots.length; i++) if (slots[i] < slots[earliest]) earliest = i;
      const finish = slots[earliest] + expectedSeconds(job, averages);
      slots[earliest] = finish;
      out.set(job.id, { position: index + 1, etaSeconds: finish });
    });
  }
  return out;
}
