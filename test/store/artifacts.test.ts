import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.ts';
import { ArtifactStore, scheduleCleanup } from '../../src/store/artifacts.ts';

const DAY = 86_400_000;
let root: string;
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A job folder with one file of `bytes`, last modified `ageMs` ago. */
function jobDir(store: ArtifactStore, id: string, bytes: number, ageMs: number, now: number): void {
  const dir = store.dirFor(id);
  mkdirSync(join(dir, 'grid'), { recursive: true });
  const file = join(dir, 'grid', 'image.png');
  writeFileSync(file, Buffer.alloc(bytes));
  const when = new Date(now - ageMs);
  for (const path of [file, join(dir, 'grid'), dir]) utimesSync(path, when, when);
}

describe('ArtifactStore', () => {
  it('measures job folders recursively', async () => {
    root = mkdtempSync(join(tmpdir(), 'facestyle-art-'));
    const store = new ArtifactStore(root);
    const now = Date.now();
    jobDir(store, 'j1', 1_000, 0, now);
    jobDir(store, 'j2', 2_500, DAY, now);
    const entries = (await store.entries()).sort((a, b) => a.name.localeCompare(b.name));
    expect(entries.map((e) => [e.name, e.bytes])).toEqual([
      ['j1', 1_000],
      ['j2', 2_500],
    ]);
    expect(await new ArtifactStore(join(root, 'missing')).entries()).toEqual([]);
  });

  it('removes folders past the age limit, then the oldest until the size fits, sparing kept ones', async () => {
    root = mkdtempSync(join(tmpdir(), 'facestyle-art-'));
    const store = new ArtifactStore(root);
    const now = Date.now();
    jobDir(store, 'ancient', 100, 40 * DAY, now);
    jobDir(store, 'ancient-running', 100, 40 * DAY, now);
    jobDir(store, 'old', 4_000, 3 * DAY, now);
    jobDir(store, 'middle', 4_000, 2 * DAY, now);
    jobDir(store, 'fresh', 4_000, 0, now);
    const report = await store.prune(
      { maxBytes: 9_000, maxAgeMs: 30 * DAY },
      (entry) => entry.name === 'ancient-running',
      now,
    );
    expect(report.removed).toEqual(['ancient', 'old']);
    expect(report.freedBytes).toBe(4_100);
    expect(report.remainingBytes).toBe(8_100);
    expect((await store.entries()).map((e) => e.name).sort()).toEqual(['ancient-running', 'fresh', 'middle']);
  });

  it('refuses an invalid cleanup schedule with a clear error', () => {
    expect(() => scheduleCleanup('every hour', 'test cleanup', async () => {})).toThrow(UserError);
    root = mkdtempSync(join(tmpdir(), 'facestyle-art-'));
  });

  it('runs the cleanup on its cron schedule', async () => {
    root = mkdtempSync(join(tmpdir(), 'facestyle-art-'));
    let runs = 0;
    const task = scheduleCleanup('* * * * * *', 'test cleanup', async () => {
      runs++;
    });
    await new Promise((resolve) => setTimeout(resolve, 2_200));
    await task.destroy();
    expect(runs).toBeGreaterThanOrEqual(1);
  });
});
