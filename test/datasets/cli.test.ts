// `facestyle dataset build` as a user runs it: summary on stdout, a clear error and exit code 1
// on a refused archive.
import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { blockPicture, tempFolder } from './helpers/fixtures.ts';
import { buildZip } from './helpers/zip-writer.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../bin/facestyle.js');

let tmp: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  tmp = await tempFolder();
});
afterEach(async () => {
  await tmp.cleanup();
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

describe('facestyle dataset build', () => {
  it('builds a dataset and prints its summary', async () => {
    const input = join(tmp.path, 'art.zip');
    await writeFile(
      input,
      buildZip([
        { name: 'a.png', data: await blockPicture(1) },
        { name: 'b.png', data: await blockPicture(2) },
        { name: 'notes.png', data: 'text' },
      ]),
    );
    const out = join(tmp.path, 'datasets', 'art');
    const { code, stdout } = await cli(
      'dataset',
      'build',
      '--in',
      input,
      '--out',
      out,
      '--res',
      '32',
      '--align',
      'center',
    );
    expect(code).toBe(0);
    expect(stdout).toContain('2 images at 32x32 (center alignment) from 3 files');
    expect(stdout).toContain('not used: not images: 1');
    expect(stdout).toContain(`contact sheet: ${join(out, 'contact-sheet.png')}`);
    expect(await readdir(join(out, 'images'))).toEqual(['000000.png', '000001.png']);
  });

  it('exits 1 with the reason for a refused archive or a bad flag', async () => {
    const input = join(tmp.path, 'empty.zip');
    await writeFile(input, buildZip([]));
    const empty = await cli(
      'dataset',
      'build',
      '--in',
      input,
      '--out',
      join(tmp.path, 'out'),
      '--align',
      'center',
    );
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain('error: the input holds no files');
    const badFlag = await cli(
      'dataset',
      'build',
      '--in',
      input,
      '--out',
      join(tmp.path, 'out'),
      '--align',
      'diagonal',
    );
    expect(badFlag.code).toBe(1);
    expect(badFlag.stderr).toContain('error: --align must be one of auto, faces, center, got "diagonal"');
    expect(await readdir(tmp.path)).toEqual(['empty.zip']);
  });
});
