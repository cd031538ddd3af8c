// `facestyle score` end to end (wasm): the documented JSON for folders and for a checkpoint, and a
// clear error with a non-zero exit for each kind of bad input.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { register } from '../../src/cli/commands/score.ts';
import { writeDemoDataset } from '../../src/demo/data.ts';
import type { FeatureMatrix } from '../../src/pipelines/score/kid.ts';
import { scoreSources } from '../../src/pipelines/score/score.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const LORELEI_STYLE = join(root, 'checkpoints/demo-lorelei-epoch08.safetensors');
let workDir: string;
let lorelei: string;
let faces: string;

async function score(args: string[]): Promise<string> {
  const program = new Command().option('--backend <name>').exitOverride();
  register(program);
  const out: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  try {
    await program.parseAsync(['node', 'facestyle', '--backend', 'wasm', 'score', ...args]);
  } finally {
    spy.mockRestore();
  }
  return out.join('');
}

/** A safetensors file that holds a tensor, but no network. */
function notAGenerator(): Buffer {
  const header = Buffer.from(JSON.stringify({ weights: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([length, header, Buffer.alloc(4)]);
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'facestyle-score-'));
  lorelei = join(workDir, 'lorelei');
  faces = join(workDir, 'faces');
  await writeDemoDataset('lorelei', lorelei, 8, 32);
  await writeDemoDataset('faces', faces, 8, 32);
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('facestyle score', () => {
  it('prints one JSON object for a folder against a folder', async () => {
    const report = JSON.parse(
      await score(['--real', lorelei, '--fake', faces, '--num', '8', '--fid', '--json']),
    );
    expect(report).toMatchObject({
      metric: 'KID-nsfwMNv2',
      num_real: 8,
      num_fake: 8,
      feature_dims: 1280,
      subset_size: 4,
      num_subsets: 100,
      resolution: 224,
      psi: null,
    });
    expect(report.features).toMatch(/^nsfw-mobilenet-v2: nsfwjs 4.4 MobileNetV2/);
    expect(report.kid).toBeGreaterThan(0);
    expect(report.kid_std).toBeGreaterThan(0);
    expect(report.fid).toBeGreaterThan(0);
    // Eight different cartoon people on each side: variety on both, and the ratio is theirs.
    expect(report.diversity_samples).toBe(8);
    expect(report.diversity_fake).toBeGreaterThan(0);
    expect(report.diversity_real).toBeGreaterThan(0);
    expect(report.diversity_ratio).toBeCloseTo(report.diversity_fake / report.diversity_real, 10);
  });

  it('renders a checkpoint at its resolution, seeds from --seed, and takes every real image by default', async () => {
    const report = JSON.parse(
      await score(['--real', lorelei, '--fake', LORELEI_STYLE, '--seed', '5', '--json']),
    );
    expect(report).toMatchObject({ num_real: 8, num_fake: 8, resolution: 64, psi: 1, seed: 5 });
    expect(report.fake).toEqual({ kind: 'checkpoint', path: LORELEI_STYLE });
    const text = await score(['--real', lorelei, '--fake', LORELEI_STYLE, '--seed', '5', '--num', '8']);
    expect(text).toMatch(/^KID-nsfwMNv2 \d\.\d{3}e[-+]\d+ ± .* \(8 generated vs 8 real at 64px/);
  });

  it('refuses bad input with what is wrong', async () => {
    const empty = join(workDir, 'empty');
    await mkdir(empty);
    await expect(score(['--real', empty, '--fake', faces])).rejects.toThrow(/holds no images/);
    await expect(score(['--real', join(workDir, 'missing'), '--fake', faces])).rejects.toThrow(
      /cannot read .*missing: no such file or folder/,
    );
    const broken = join(workDir, 'broken');
    await mkdir(broken);
    await writeFile(join(broken, 'a.png'), 'not a png');
    await writeFile(join(broken, 'b.png'), 'not a png either');
    await expect(score(['--real', broken, '--fake', faces, '--num', '2'])).rejects.toThrow(
      /cannot decode .*a\.png/,
    );
    await expect(score(['--real', lorelei, '--fake', faces, '--num', '9'])).rejects.toThrow(
      /has 8 images, fewer than the 9 asked for/,
    );
    await expect(score(['--real', lorelei, '--fake', LORELEI_STYLE, '--num', '1'])).rejects.toThrow(/--num/);
    const weights = join(workDir, 'weights.safetensors');
    await writeFile(weights, notAGenerator());
    await expect(score(['--real', lorelei, '--fake', weights])).rejects.toThrow(
      /is not a generator checkpoint/,
    );
    const text = join(workDir, 'notes.safetensors');
    await writeFile(text, 'hello');
    await expect(score(['--real', lorelei, '--fake', text])).rejects.toThrow(/is not a generator checkpoint/);
    await expect(score(['--real', LORELEI_STYLE, '--fake', faces])).rejects.toThrow(/--real must be images/);
  });

  it('exits non-zero with the error on stderr', async () => {
    const child = spawn(
      process.execPath,
      [join(root, 'bin/facestyle.js'), 'score', '--real', join(workDir, 'missing'), '--fake', faces],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/error: cannot read .*missing/);
  });
});

describe('scoreSources with a real-feature cache', () => {
  it('featurises one real set once for several models, with the scores it gives without the cache', async () => {
    const realFeatureCache = new Map<string, FeatureMatrix>();
    const stages: string[] = [];
    const onStage = (stage: string) => stages.push(stage);
    const first = await scoreSources({ real: lorelei, fake: faces, num: 8, realFeatureCache, onStage });
    const second = await scoreSources({ real: lorelei, fake: lorelei, num: 8, realFeatureCache, onStage });
    expect(realFeatureCache.size).toBe(1);
    expect(stages.filter((s) => s.startsWith('reading 8 real images'))).toHaveLength(1);
    const uncached = await scoreSources({ real: lorelei, fake: lorelei, num: 8 });
    expect(second.kid).toBe(uncached.kid);
    expect(second.diversity_real).toBe(uncached.diversity_real);
    expect(second.num_real).toBe(8);
    // The cached features are the set's, not the first model's: the two scores differ.
    expect(second.kid).toBeLessThan(first.kid);
  });
});
