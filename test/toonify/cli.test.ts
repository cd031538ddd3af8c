// `facestyle toonify` as a user runs it: results and a summary, the preview gone afterwards, and
// clear errors (exit code 1) for contradictory or missing options.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../bin/facestyle.js');
const FIXTURE = join(import.meta.dirname, '../fixtures/sg2_tiny');
const PHOTO = join(
  dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')),
  'demo',
  'sample1.jpg',
);

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'facestyle-toonify-cli-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, '--backend', 'wasm', 'toonify', ...args], {
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

const common = ['--photo', PHOTO, '--base', join(FIXTURE, 'model.safetensors')];

describe('facestyle toonify', () => {
  it('stylises the chosen face and prints where the results are', async () => {
    const out = join(root, 'out');
    const { code, stdout, stderr } = await cli(
      ...common,
      '--style',
      join(FIXTURE, 'style.safetensors'),
      '--layer',
      '16',
      '--face',
      '1',
      '--steps',
      '4',
      '--preview-every',
      '2',
      '--out',
      out,
    );
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^face 1 of 3 \(score 0\.\d+\)$/m);
    expect(stdout).toMatch(/reconstruction PSNR \d+\.\d\d dB, final loss .*, 4 steps in .* on wasm/);
    expect(stderr).toMatch(/preview: .*preview\.png \(every 2 steps\)/);
    // The preview shows the photo: it is gone once the job is done.
    expect((await readdir(out)).sort()).toEqual([
      'original.png',
      'reconstruction.png',
      'stylised.png',
      'toonify.png',
    ]);
  });

  it('refuses a saved blend and a style at once, and neither', async () => {
    const both = await cli(...common, '--blend', 'b.safetensors', '--style', 's.safetensors', '--out', root);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(
      /error: give either --blend \(a saved blend\) or --style with --layer, not both/,
    );
    // Neither: the style fine-tuned from the base, which this fixture model does not have.
    const neither = await cli(...common, '--out', root);
    expect(neither.code).toBe(1);
    expect(neither.stderr).toMatch(
      /error: no --style given and no style model fine-tuned from .* is installed/,
    );
  });
});
