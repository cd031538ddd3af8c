// The first hour with the CLI, run for real through bin/facestyle.js from a temporary folder that
// holds the shipped demo checkpoints (as a clean clone does): defaults from the model registry,
// output formats from --out, clean refusals before any slow work, and the fixes of issue 19.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plannedImages } from '../../src/cli/commands/finetune.ts';
import { checkpointOutput, imageFormatOf, parseNumber } from '../../src/cli/options.ts';
import { readCheckpointInfo } from '../../src/model/checkpoint/info.ts';
import { ModelRegistry } from '../../src/pipelines/registry.ts';
import { plural } from '../../src/text.ts';

const execFileAsync = promisify(execFile);
const REPO = join(import.meta.dirname, '../..');
const CLI = join(REPO, 'bin/facestyle.js');
const FIXTURE_MODEL = join(REPO, 'test/fixtures/sg2_tiny/model.safetensors');

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'facestyle-first-hour-'));
  await cp(join(REPO, 'checkpoints'), join(root, 'checkpoints'), { recursive: true });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** The CLI in `cwd` (the temporary clone by default), with the machine's own backend choice. */
async function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  const started = performance.now();
  const env = { ...process.env, FACESTYLE_DATA_DIR: '', FACESTYLE_DEFAULT_MODEL: '', ...opts.env };
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], {
      cwd: opts.cwd ?? root,
      env,
      timeout: 120_000,
      maxBuffer: 16 * 2 ** 20,
    });
    return { code: 0, stdout, stderr, seconds: (performance.now() - started) / 1000 };
  } catch (err) {
    const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr, seconds: (performance.now() - started) / 1000 };
  }
}

describe('option parsing shared by commands and benches', () => {
  it('names the flag and the allowed range', () => {
    expect(parseNumber('--psi', '0.7', { min: -1, max: 2 })).toBe(0.7);
    expect(() => parseNumber('--psi', '3', { min: -1, max: 2 })).toThrow(
      '--psi must be a number from -1 to 2, got "3"',
    );
    expect(() => parseNumber('--steps', '0', { integer: true, min: 1 })).toThrow(
      '--steps must be a whole number of at least 1, got "0"',
    );
    expect(() => parseNumber('--lr', ' ')).toThrow(/--lr must be a number/);
  });

  it('takes the image format from the extension and refuses other extensions', () => {
    expect(imageFormatOf('g.jpg')).toBe('jpeg');
    expect(imageFormatOf('g.JPEG')).toBe('jpeg');
    expect(imageFormatOf('g.webp')).toBe('webp');
    expect(imageFormatOf('g')).toBe('png');
    expect(() => imageFormatOf('g.gif')).toThrow(/"\.gif" is not an image format/);
    expect(() => checkpointOutput('b.png', 'blend')).toThrow(
      /writes a model checkpoint \(\.safetensors\), not an image/,
    );
    expect(checkpointOutput('b.safetensors', 'blend')).toBe('b.safetensors');
  });

  it('plans the images the trainer will really train on (whole minibatches), in words', () => {
    // 88 images x 2 (mirror) = 176 per epoch, minibatch 32: the trainer stops after 6 steps, 192 images.
    expect(plannedImages(1, 176, 32)).toBe(192);
    expect(plannedImages(2, 176, 32)).toBe(352);
    expect(plural(1, 'epoch')).toBe('1 epoch');
    expect(plural(3, 'epoch')).toBe('3 epochs');
  });
});

describe('facestyle commands on a clean clone', () => {
  it('generate: the default model, a JPEG for --out g.jpg, and no Dawn limit warnings', async () => {
    const run = await cli(['generate', '--seeds', '0-1', '--out', 'g.jpg']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(
      /--checkpoint: the default model demo-faces \(checkpoints\/demo-faces\.safetensors\)/,
    );
    expect(run.stdout).toMatch(/wrote .*g\.jpg \(2 images, jpeg,/);
    const bytes = await readFile(join(root, 'g.jpg'));
    expect([...bytes.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
    expect(existsSync(join(root, 'g.png'))).toBe(false);
    expect(run.stderr).not.toMatch(/artificially reduced/);
    const refused = await cli(['generate', '--out', 'g.gif']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/error: --out g\.gif: "\.gif" is not an image format/);
  });

  it('blend: refuses --out b.png before loading anything; the defaults write a checkpoint', async () => {
    const refused = await cli(['blend', '--layer', '16', '--out', 'b.png']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/blend writes a model checkpoint \(\.safetensors\), not an image/);
    expect(existsSync(join(root, 'b.png'))).toBe(false);

    const run = await cli(['--backend', 'wasm', 'blend', '--layer', '16', '--out', 'b.safetensors']);
    expect(run.code, run.stderr).toBe(0);
    // The snapshot /blend and npm start take without an epoch: the best-scored one.
    const best = await new ModelRegistry([join(root, 'checkpoints')]).bestSnapshot('demo-lorelei');
    expect(best?.epoch).toBeDefined();
    expect(run.stderr).toMatch(
      new RegExp(
        `--style: demo-lorelei epoch ${best!.epoch} \\(its best-scored snapshot\\) .* fine-tuned from demo-faces`,
      ),
    );
    const info = await readCheckpointInfo(join(root, 'b.safetensors'));
    expect(info.meta.kind).toBe('blend');
  });

  it('grid matrix: refuses models of different architectures cleanly, as blend does', async () => {
    const run = await cli([
      '--backend',
      'wasm',
      'grid',
      'matrix',
      '--snapshots',
      FIXTURE_MODEL,
      '--out',
      'm.png',
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /error: cannot blend: tensor .* has shape .* in the base model but .* in the .*model\.safetensors/,
    );
    expect(run.stderr).toMatch(/hint: Both models must share one architecture/);
    expect(run.stderr.length).toBeLessThan(2000);
    expect(existsSync(join(root, 'm.png'))).toBe(false);
  });

  it('grid matrix: every snapshot of the default style by default', async () => {
    const run = await cli(['--backend', 'wasm', 'grid', 'matrix', '--seeds', '0', '--out', 'matrix.webp']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(
      /--snapshots: the 5 snapshots of demo-lorelei \(fine-tuned from demo-faces, epochs 1, 2, 3, 5, 8\)/,
    );
    expect((await sharp(join(root, 'matrix.webp')).metadata()).format).toBe('webp');
  });

  it('toonify: --steps 0 is refused at once, before the photo is read or a model loaded', async () => {
    const run = await cli(['toonify', '--photo', 'no-such-photo.jpg', '--out', 'toon', '--steps', '0']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/error: --steps must be a whole number of at least 1, got "0"/);
    expect(run.stderr).not.toMatch(/aligning|loading the models|default model/);
    expect(existsSync(join(root, 'toon'))).toBe(false);
  });

  it('finetune --data faces.zip says how to build the dataset', async () => {
    await writeFile(join(root, 'faces.zip'), 'PK');
    const run = await cli([
      'finetune',
      '--data',
      'faces.zip',
      '--resolution',
      '8',
      '--epochs',
      '1',
      '--out',
      'runs/x',
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /error: --data faces\.zip is an archive: fine-tuning reads a folder of images/,
    );
    expect(run.stderr).toMatch(
      /hint: build the dataset first: npx facestyle dataset build --in faces\.zip --out datasets\/faces --res 8, then --data datasets\/faces/,
    );
    expect(run.stderr).not.toMatch(/ENOTDIR/);
  });

  it('finetune on raw photos warns about alignment; its progress has one ETA and true kimg', async () => {
    const photos = join(root, 'photos');
    await mkdir(photos, { recursive: true });
    for (let i = 0; i < 3; i++) {
      await sharp({
        create: { width: 192, height: 108, channels: 3, background: { r: 40 * i, g: 90, b: 160 } },
      })
        .jpeg()
        .toFile(join(photos, `photo${i}.jpg`));
    }
    const run = await cli([
      '--backend',
      'wasm',
      'finetune',
      '--data',
      'photos',
      '--out',
      'runs/photos',
      '--epochs',
      '1',
      '--batch',
      '4',
      '--preview-seeds',
      '0',
      '--resolution',
      '8',
      '--channel-base',
      '64',
      '--channel-max',
      '8',
      '--z-dim',
      '8',
      '--w-dim',
      '8',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(
      /warning: photos holds photos, not aligned faces \(3 of the first 3: photo0\.jpg 192x108/,
    );
    expect(run.stderr).toMatch(
      /npx facestyle dataset build --in photos --out datasets\/photos-aligned --res 8/,
    );
    // 3 images x 2 (mirror) = 6 per epoch; minibatch 4: 2 steps, 8 images.
    expect(run.stderr).toMatch(
      /on 3 images \(6 per epoch\), 1 epoch = 0\.008 kimg, snapshots every 1 epoch in/,
    );
    expect(run.stdout).toMatch(/finished at epoch 1\/1 \(0\.008 kimg\)/);
    const progressLines = run.stderr.split('\n').filter((line) => line.startsWith('training:'));
    expect(progressLines.length).toBeGreaterThan(0);
    for (const line of progressLines) expect(line.match(/eta/gi)?.length ?? 0).toBeLessThanOrEqual(1);
    expect(progressLines.at(-1)).toMatch(/\(8\/8\)/);
  });

  it('jobs list: never creates an empty store, and finds the offline demo jobs', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'facestyle-jobs-empty-'));
    try {
      const run = await cli(['jobs', 'list'], { cwd: empty });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toBe('no jobs\n');
      expect(run.stderr).toMatch(
        /no job store at .*data\/facestyle\.sqlite yet.*the offline demo's is in out\/demo\/data/,
      );
      expect(existsSync(join(empty, 'data'))).toBe(false);

      // A store where `npm start` keeps the demo's jobs: one finished job in it.
      const { JobStore } = await import('../../src/jobs/job-store.ts');
      const { defaultStoreUrl } = await import('../../src/store/keyv.ts');
      const store = await JobStore.open(defaultStoreUrl(join(empty, 'out/demo/data')));
      await store.put({
        id: 'demo-job-1',
        kind: 'generate',
        lane: 'short',
        priority: 10,
        status: 'completed',
        payload: {},
        userId: 'offline-demo',
        meta: {},
        createdAt: Date.now() - 1000,
        attempt: 1,
        maxAttempts: 2,
        timeLimitMs: 60_000,
        units: 1,
        history: [],
      });
      await store.close();
      const demo = await cli(['jobs', 'list'], { cwd: empty });
      expect(demo.code, demo.stderr).toBe(0);
      expect(demo.stderr).toMatch(/showing the offline demo's jobs \(out\/demo\/data\)/);
      expect(demo.stdout).toMatch(/demo-job-1\s+generate\s+completed\s+offline-demo/);
      expect(existsSync(join(empty, 'data'))).toBe(false);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
