import { describe, expect, it } from 'vitest';
import { DurationAverages, placeJobs } from '../../src/jobs/eta.ts';
import { durationAverages, jobInfo, selectJobs } from '../../src/jobs/job-info.ts';
import { KIND_SPECS } from '../../src/jobs/kinds.ts';
import type { JobRecord } from '../../src/jobs/types.ts';

function job(id: string, fields: Partial<JobRecord>): JobRecord {
  return {
    id,
    kind: 'generate',
    lane: 'short',
    priority: 10,
    status: 'queued',
    payload: {},
    userId: 'u',
    meta: {},
    createdAt: 0,
    attempt: 0,
    maxAttempts: 2,
    timeLimitMs: 60_000,
    units: 1,
    history: [],
    ...fields,
  };
}

describe('DurationAverages', () => {
  it('averages plainly at first, then follows recent jobs', () => {
    const averages = new DurationAverages({ generate: 2 }, {}, 4);
    expect(averages.secondsPerUnit('generate')).toBe(2);
    expect(averages.secondsPerUnit('unknown')).toBe(1);
    averages.record('generate', 4, 4); // 1 s per image
    averages.record('generate', 6, 2); // 3 s per image
    expect(averages.secondsPerUnit('generate')).toBeCloseTo(2);
    for (let i = 0; i < 30; i++) averages.record('generate', 10, 1);
    expect(averages.secondsPerUnit('generate')).toBeCloseTo(10, 2);
  });
});

describe('placeJobs', () => {
  const averages = new DurationAverages({ generate: 2, finetune: 100 });
  const now = 100_000;

  it('numbers queued jobs per lane in start order and adds up their durations', () => {
    const jobs = [
      job('run', { status: 'running', startedAt: now - 1_000, units: 2 }), // 4 s expected, 1 s done
      job('late', { createdAt: 30 }),
      job('early', { createdAt: 10, units: 3 }),
      job('urgent', { createdAt: 50, priority: 1 }),
      job('tune', { lane: 'long', kind: 'finetune', units: 2 }),
      job('done', { status: 'completed' }),
    ];
    const placed = placeJobs(jobs, averages, { short: 1, long: 1 }, now);
    expect(placed.get('run')).toEqual({ position: null, etaSeconds: 3 });
    expect(placed.get('urgent')).toEqual({ position: 1, etaSeconds: 5 });
    expect(placed.get('early')).toEqual({ position: 2, etaSeconds: 11 });
    expect(placed.get('late')).toEqual({ position: 3, etaSeconds: 13 });
    // The fine-tune lane has its own queue: nothing ahead of it.
    expect(placed.get('tune')).toEqual({ position: 1, etaSeconds: 200 });
    expect(placed.has('done')).toBe(false);
  });

  it('shares a lane between several workers', () => {
    const jobs = [job('a', { createdAt: 1 }), job('b', { createdAt: 2 }), job('c', { createdAt: 3 })];
    const placed = placeJobs(jobs, averages, { short: 2 }, now);
    expect([...placed.values()].map((p) => p.etaSeconds)).toEqual([2, 2, 4]);
  });

  it("prefers a running job's own estimate, then its progress rate", () => {
    const withEta = job('x', {
      status: 'running',
      startedAt: now - 10_000,
      progress: { fraction: 0.1, stage: 's', etaSeconds: 30, at: now - 5_000 },
    });
    const withRate = job('y', {
      status: 'running',
      startedAt: now - 10_000,
      progress: { fraction: 0.25, stage: 's', at: now },
    });
    const placed = placeJobs([withEta, withRate], averages, {}, now);
    expect(placed.get('x')?.etaSeconds).toBe(25);
    expect(placed.get('y')?.etaSeconds).toBe(30);
  });
});

describe('job listings (one helper for the queues and the operators view)', () => {
  const records = [
    job('old-done', { status: 'completed', createdAt: 1 }),
    job('alice-queued', { userId: 'alice', createdAt: 3 }),
    job('bob-running', { userId: 'bob', status: 'running', createdAt: 2, kind: 'finetune', lane: 'long' }),
  ];

  it('selects by status, user and kind, newest first, 50 by default', () => {
    expect(selectJobs(records).map((r) => r.id)).toEqual(['alice-queued', 'bob-running', 'old-done']);
    expect(selectJobs(records, { status: ['queued', 'running'] }).map((r) => r.id)).toEqual([
      'alice-queued',
      'bob-running',
    ]);
    expect(selectJobs(records, { userId: 'bob', kind: 'finetune' }).map((r) => r.id)).toEqual([
      'bob-running',
    ]);
    expect(selectJobs(records, { limit: 1 }).map((r) => r.id)).toEqual(['alice-queued']);
    const many = Array.from({ length: 60 }, (_, i) => job(`j${i}`, { createdAt: i }));
    expect(selectJobs(many)).toHaveLength(50);
  });

  it('shows unfinished jobs with position and ETA, finished ones without, as copies', () => {
    const averages = durationAverages(KIND_SPECS);
    expect(averages.secondsPerUnit('finetune')).toBe(KIND_SPECS.finetune.defaultSecondsPerUnit);
    const placements = placeJobs(records, averages, { short: 1, long: 1 }, 10_000);
    const queued = jobInfo(records[1], placements);
    expect(queued.position).not.toBeNull();
    expect(queued.etaSeconds).toBeGreaterThanOrEqual(0);
    const done = jobInfo(records[0], placements);
    expect([done.position, done.etaSeconds]).toEqual([null, null]);
    done.history.push({ at: 0, event: 'changed' });
    expect(records[0].history).toEqual([]);
  });
});
