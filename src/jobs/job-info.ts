// What a queue shows of its jobs, the same whether the queue itself answers or an operator's view
// of it does (view.ts): which records a listing holds and in what order, each record with its
// queue position and ETA, and the ETA defaults before any job of a kind has finished.
import { type AverageEntry, DurationAverages, type Placement } from './eta.ts';
import type { KindMap, KindSpecs } from './kinds.ts';
import type { JobFilter, JobInfo, JobRecord } from './types.ts';

const DEFAULT_LIST_LIMIT = 50;

/** The records `filter` selects, newest first, at most its limit. */
export function selectJobs(records: Iterable<JobRecord>, filter: JobFilter = {}): JobRecord[] {
  return [...records]
    .filter(
      (record) =>
        (!filter.status || filter.status.includes(record.status)) &&
        (!filter.userId || record.userId === filter.userId) &&
        (!filter.kind || record.kind === filter.kind),
    )
    .sort((a, b) => b.createdAt - a.createdAt)
    .slice(0, filter.limit ?? DEFAULT_LIST_LIMIT);
}

/** A copy of the record with its queue position and ETA (null once it is not queued or running). */
export function jobInfo<KM extends KindMap>(
  record: JobRecord,
  placements: Map<string, Placement>,
): JobInfo<KM> {
  const placement = placements.get(record.id);
  return {
    ...structuredClone(record),
    position: placement?.position ?? null,
    etaSeconds: placement ? Math.round(placement.etaSeconds ?? 0) : null,
  } as JobInfo<KM>;
}

/** Duration averages that start from each kind's declared seconds per unit, then the stored ones. */
export function durationAverages<KM extends KindMap>(
  kinds: KindSpecs<KM>,
  stored: Record<string, AverageEntry> = {},
): DurationAverages {
  const defaults = Object.fromEntries(
    Object.entries(kinds).map(([kind, spec]) => [
      kind,
      (spec as { defaultSecondsPerUnit: number }).defaultSecondsPerUnit,
    ]),
  );
  return new DurationAverages(defaults, stored);
}
