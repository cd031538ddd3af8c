// A full disk and a read-only folder during `dataset build`: a clear one-line error, no stack
// trace, and nothing half-written. The full disk is a real one (a 256 KiB tmpfs, mounted when the
// tests run as root, as in CI containers); the error mapping is checked everywhere.
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDataset, diskError } from '../../src/datasets/build.ts';
import { DatasetError } from '../../src/datasets/errors.ts';
import { buildZip } from './helpers/zip-writer.ts';

const CLI = join(import.meta.dirname, '../../bin/facestyle.js');

let dir: string;
let smallDisk: string | undefined;

function tryMountTmpfs(at: string): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', at], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Noise pictures: they do not compress, so a few fill the small disk. */
async function noiseArchive(count: number): Promise<Buffer> {
  const entries = [];
  for (let i = 0; i < count; i++) {
    const data = await sharp(randomBytes(128 * 128 * 3), { raw: { width: 128, height: 128, channels: 3 } })
      .png()
      .toBuffer();
    entries.push({ name: `noise${i}.png`, data, method: 'store' as const });
  }
  return buildZip(entries);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'facestyle-diskfull-'));
  const mountPoint = join(dir, 'small-disk');
  await mkdir(mountPoint);
  if (tryMountTmpfs(mountPoint)) smallDisk = mountPoint;
});

afterAll(async () => {
  if (smallDisk) execFileSync('umount', [smallDisk]);
  await rm(dir, { recursive: true, force: true });
});

describe('dataset build on a full disk', () => {
  it.skipIf(process.getuid?.() !== 0)(
    'refuses with one clear line and leaves the disk empty',
    async () => {
      expect(smallDisk, 'mounting a tmpfs as root').toBeDefined();
      const input = join(dir, 'noise.zip');
      await writeFile(input, await noiseArchive(12));
      const outDir = join(smallDisk!, 'noise');
      const err = await buildDataset({ input, outDir, resolution: 128, align: 'center' }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(DatasetError);
      expect((err as DatasetError).message).toMatch(/^the disk holding .*small-disk is full: /);
      expect(await readdir(smallDisk!)).toEqual([]);

      const run = await promisify(execFile)(
        process.execPath,
        [CLI, 'dataset', 'build', '--in', input, '--out', outDir, '--res', '128', '--align', 'center'],
        { timeout: 120_000 },
      ).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      expect(run.code).toBe(1);
      const lines = run.stderr
        .trim()
        .split('\n')
        .filter((line) => !/^\d{4}-\d\d-\d\dT[\d:.]+Z /.test(line) && !line.includes('\r'));
      expect(lines.find((line) => line.startsWith('error: '))).toMatch(/^error: the disk holding .* is full/);
      expect(run.stderr).not.toMatch(/\n\s+at |ENOSPC: no space/);
      expect(await readdir(smallDisk!)).toEqual([]);
    },
    180_000,
  );
});

describe('disk errors as users read them', () => {
  it('names a full disk whether it comes as an errno code or in sharp message text', () => {
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write '/x'"), {
      code: 'ENOSPC',
    });
    expect(diskError(enospc, '/data/datasets')?.message).toMatch(
      /^the disk holding \/data\/datasets is full/,
    );
    const fromSharp = new Error('vips__file_write: write failed\nNo space left on device');
    expect(diskError(fromSharp, '/d')).toBeInstanceOf(DatasetError);
    const readOnly = Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
    expect(diskError(readOnly, '/d')?.message).toMatch(/^cannot write to \/d \(EROFS\)/);
    expect(diskError(new Error('something else'), '/d')).toBeUndefined();
  });
});
