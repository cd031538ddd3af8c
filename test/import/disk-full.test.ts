// `facestyle import` onto a full disk (a real 256 KiB tmpfs, mounted when the tests run as root) or
// into a read-only folder: one clear error, and no half-written checkpoint or temporary file left
// (the checkpoint writer's own handling, checked here for the import path).
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { CheckpointError } from '../../src/model/checkpoint/io.ts';
import { importWeights } from '../../src/model/import/importer.ts';
import { G_STATE_DICT } from './support/weights.ts';

const asRoot = process.getuid?.() === 0;
let dir: string;
let full: string;
let readOnly: string;
const mounts: string[] = [];

beforeAll(async () => {
  await initBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'facestyle-importdisk-'));
  full = join(dir, 'full');
  readOnly = join(dir, 'read-only');
  await Promise.all([mkdir(full), mkdir(readOnly)]);
  if (asRoot) {
    // The fixture's checkpoint takes about 700 KB: it cannot fit in 256 KiB.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', full]);
    mounts.push(full);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', readOnly]);
    mounts.push(readOnly);
  }
});

afterAll(async () => {
  for (const mount of mounts) execFileSync('umount', [mount]);
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!asRoot)('import onto a disk that cannot take the checkpoint', () => {
  it('a full disk: says so, and leaves neither the checkpoint nor its temporary file', async () => {
    const err = await importWeights(G_STATE_DICT, { out: join(full, 'g.safetensors') }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(
      /^cannot write checkpoint .*g\.safetensors: ENOSPC: no space left on device/,
    );
    expect(await readdir(full)).toEqual([]);
  });

  it('a read-only folder: says so', async () => {
    const err = await importWeights(G_STATE_DICT, { out: join(readOnly, 'g.safetensors') }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(
      /^cannot write checkpoint .*g\.safetensors: EROFS: read-only file system/,
    );
  });
});
