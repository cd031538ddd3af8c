// `facestyle finetune` end to end on a tiny from-scratch model (wasm): snapshots, previews, the
// progress log and loss curve, resuming by running the same command again, and option errors.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { readCurve, register } from '../../src/cli/commands/finetune.ts';
import { UserError } from '../../src/errors.ts';
import { readCheckpointInfo } from '../../src/model/checkpoint/io.ts';
import { ModelRegistry } from '../../src/pipelines/registry.ts';

let workDir: string;
let dataDir: string;

async function run(args: string[]): Promise<string> {
  const program = new Command().option('--backend <name>').exitOverride();
  register(program);
  const out: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  try {
    await program.parseAsync(['node', 'facestyle', '--backend', 'wasm', 'finetune', ...args]);
  } finally {
    spy.mockRestore();
  }
  return out.join('');
}

/** A run of 4 images a step into `out`, a snapshot and preview every epoch. */
const runArgs = (out: string, previewSeeds: string) => [
  '--data',
  dataDir,
  '--out',
  out,
  '--batch',
  '4',
  '--snapshot-every',
  '1',
  '--preview-seeds',
  previewSeeds,
];

const SCRATCH = [
  '--resolution',
  '8',
  '--channel-base',
  '128',
  '--channel-max',
  '16',
  '--z-dim',
  '8',
  '--w-dim',
  '8',
];

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'facestyle-finetune-'));
  dataDir = join(workDir, 'images');
  await mkdir(dataDir);
  for (let i = 0; i < 4; i++) {
    await sharp({ create: { width: 12, height: 12, channels: 3, background: { r: 40 * i, g: 200, b: 90 } } })
      .png()
      .toFile(join(dataDir, `${i}.png`));
  }
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('facestyle finetune', () => {
  it('trains from scratch with snapshots, previews, a progress log and a loss curve, then resumes', async () => {
    const out = join(workDir, 'run');
    const common = runArgs(out, '0-3');
    const first = await run([...SCRATCH, ...common, '--epochs', '2']);
    expect(first).toMatch(/finished at epoch 2\/2/);
    const files = (await readdir(out)).sort();
    expect(files).toEqual(
      expect.arrayContaining([
        'losses.png',
        'preview-epoch00001.png',
        'preview-epoch00002.png',
        'progress.jsonl',
        'snapshot-epoch00001.safetensors',
        'snapshot-epoch00002.safetensors',
      ]),
    );
    const info = await readCheckpointInfo(join(out, 'snapshot-epoch00002.safetensors'));
    expect(info.meta).toMatchObject({ name: 'run', kind: 'finetune', epoch: 2 });
    expect(info.meta.parent).toBeUndefined();
    const lines = (await readFile(join(out, 'progress.jsonl'), 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(4); // 2 epochs x 8 items (mirrored) / batch 4
    expect(JSON.parse(lines[3])).toMatchObject({ epoch: 2, step: 4, epochs: 2 });
    expect((await sharp(await readFile(join(out, 'losses.png'))).metadata()).width).toBe(640);

    const second = await run([...SCRATCH, ...common, '--epochs', '3']);
    expect(second).toMatch(/finished at epoch 3\/3 .*resumed from .*snapshot-epoch00002/);
    expect((await readdir(out)).filter((f) => f.endsWith('.safetensors'))).toHaveLength(3);
    // The snapshots are one model by epoch, as /blend epochs:N looks them up.
    const registry = new ModelRegistry([out]);
    expect((await registry.snapshots('run')).map((s) => s.epoch)).toEqual([1, 2, 3]);
    expect((await registry.snapshotAt('run', 2)).path).toBe(join(out, 'snapshot-epoch00002.safetensors'));
    expect((await registry.resolve('run')).epoch).toBe(3);
    const curve = await readCurve(join(out, 'progress.jsonl'));
    expect(curve.map((p) => p.kimg)).toEqual([0.004, 0.008, 0.012, 0.016, 0.02, 0.024]);
  });

  it('stops on Ctrl-C with exit code 130, keeping its snapshots, so chained scripts stop too', async () => {
    const out = join(workDir, 'interrupted');
    const bin = fileURLToPath(new URL('../../bin/facestyle.js', import.meta.url));
    const child = spawn(
      process.execPath,
      [bin, '--backend', 'wasm', 'finetune', ...SCRATCH, ...runArgs(out, '0'), '--epochs', '1000'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    const exitCode = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Interrupt once the first snapshot exists: from then on there is something to keep.
    const deadline = Date.now() + 60_000;
    while (!(await readdir(out).catch(() => [] as string[])).includes('snapshot-epoch00001.safetensors')) {
      if (Date.now() > deadline) throw new Error('no snapshot within 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGINT');
    expect(await exitCode).toBe(130);
    expect(stdout).toMatch(/stopped at epoch \d+\/1000/);
    expect((await readdir(out)).filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThanOrEqual(1);
  });

  it('explains what is missing or wrong', async () => {
    const out = join(workDir, 'bad');
    await expect(run(['--data', dataDir, '--out', out, '--epochs', '1'])).rejects.toThrow(/--resolution/);
    await expect(run([...SCRATCH, '--data', dataDir, '--out', out, '--epochs', 'x'])).rejects.toThrow(
      UserError,
    );
    await expect(
      run([...SCRATCH, '--data', dataDir, '--out', out, '--epochs', '1', '--aug', 'fixed:2']),
    ).rejects.toThrow(/--aug/);
    await expect(
      run([...SCRATCH, '--data', join(workDir, 'nowhere'), '--out', out, '--epochs', '1']),
    ).rejects.toThrow(/--data .*nowhere does not exist/);
    await expect(
      run([...SCRATCH, '--data', dataDir, '--out', out, '--epochs', '4', '--snapshot-epochs', '2,x']),
    ).rejects.toThrow(/--snapshot-epochs must be a whole number/);
    await expect(
      run([...SCRATCH, '--data', dataDir, '--out', out, '--epochs', '4', '--snapshot-epochs', '2,8']),
    ).rejects.toThrow(/snapshot epochs must be whole epochs from 1 to 4, got 8/);
  });
});
