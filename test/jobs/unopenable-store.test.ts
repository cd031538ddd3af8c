// A job store that cannot be opened: a read-only data folder, or a database path that is not a
// file. `facestyle jobs list` says so in one line and exits 1; no SQLITE_CANTOPEN escapes as an
// unhandled rejection (which vitest would also report as an error of this file).
import { execFile, execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.ts';
import { JobStore } from '../../src/jobs/job-store.ts';

const CLI = join(import.meta.dirname, '../../bin/facestyle.js');
let dir: string;
let readOnly: string;
let mounted = false;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'facestyle-rostore-'));
  readOnly = join(dir, 'read-only');
  // A data folder that already holds a job store (with none, `jobs list` has nothing to open and
  // says so), then made read-only.
  const written = join(dir, 'written');
  await mkdir(written);
  const store = await JobStore.open(`sqlite://${join(written, 'facestyle.sqlite')}`);
  await store.close();
  await mkdir(readOnly);
  // Root ignores permission bits: a read-only bind mount is read-only for root too.
  if (process.getuid?.() === 0) {
    execFileSync('mount', ['--bind', written, readOnly]);
    execFileSync('mount', ['-o', 'remount,ro,bind', readOnly]);
    mounted = true;
  } else {
    await rm(readOnly, { recursive: true });
    await rename(written, readOnly);
    await chmod(readOnly, 0o555);
  }
});

afterAll(async () => {
  if (mounted) execFileSync('umount', [readOnly]);
  else await chmod(readOnly, 0o755);
  await rm(dir, { recursive: true, force: true });
});

async function jobsList(dataDir: string): Promise<{ code: number; stderr: string }> {
  const env = { ...process.env };
  delete env.FACESTYLE_QUEUE_URL;
  delete env.FACESTYLE_STORE_URL;
  return promisify(execFile)(process.execPath, [CLI, 'jobs', 'list', '--data-dir', dataDir], {
    timeout: 60_000,
    env,
  }).then(
    () => ({ code: 0, stderr: '' }),
    (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
  );
}

function userLines(stderr: string): string[] {
  return stderr
    .trim()
    .split('\n')
    .filter((line) => !/^\d{4}-\d\d-\d\dT[\d:.]+Z /.test(line));
}

describe('a job store that cannot be opened', () => {
  it('jobs list on a read-only data folder: one clear error, exit 1, nothing uncaught', async () => {
    const { code, stderr } = await jobsList(readOnly);
    expect(code).toBe(1);
    const lines = userLines(stderr);
    expect(lines[0]).toMatch(
      /^error: cannot open the job store .*: the data folder .*read-only is not writable/,
    );
    expect(lines[1]).toMatch(/^hint: /);
    expect(lines).toHaveLength(2);
    expect(stderr).not.toMatch(/triggerUncaughtException|\n\s+at |SQLITE_CANTOPEN/);
  });

  it('jobs list where the database is a folder: the driver error, as one line', async () => {
    const dataDir = join(dir, 'odd');
    await mkdir(join(dataDir, 'facestyle.sqlite'), { recursive: true });
    const { code, stderr } = await jobsList(dataDir);
    expect(code).toBe(1);
    const lines = userLines(stderr);
    expect(lines[0]).toMatch(/^error: cannot open the job store at sqlite:.*: unable to open database file$/);
    expect(stderr).not.toMatch(/triggerUncaughtException|\n\s+at /);
  });

  it('JobStore.open rejects with a UserError and leaves no rejection unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      await expect(JobStore.open(`sqlite://${join(readOnly, 'facestyle.sqlite')}`)).rejects.toBeInstanceOf(
        UserError,
      );
      const folderAsFile = join(dir, 'odd2', 'facestyle.sqlite');
      await mkdir(folderAsFile, { recursive: true });
      await expect(JobStore.open(`sqlite://${folderAsFile}`)).rejects.toBeInstanceOf(UserError);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
