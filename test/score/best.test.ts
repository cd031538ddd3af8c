// Reading scores back on the shipped demo models (scored by scripts/score-demo-models.ts): the
// registry, the bot's catalog, /blend's choice and the CLI's run-folder choice all pick the best
// epoch, and fall back to the newest snapshot when none is scored.
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RegistryModelCatalog } from '../../src/bot/catalog.ts';
import { chooseSnapshot } from '../../src/bot/commands/blend.ts';
import { register as registerModels } from '../../src/cli/commands/models.ts';
import { ModelRegistry } from '../../src/pipelines/registry.ts';
import { bestScored, formatKid, formatScore } from '../../src/pipelines/score/best.ts';
import { pickSnapshot } from '../../src/pipelines/score/pick.ts';

let workDir: string;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'facestyle-best-'));
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('the best-scored snapshot', () => {
  it('is the lowest KID of one metric, ties to the earlier epoch, none when nothing is scored', () => {
    const score = (metric: string, kid: number) => ({
      metric,
      against: 'x',
      kid,
      kidStd: 0.01,
      numReal: 8,
      numFake: 8,
      psi: 1,
    });
    expect(bestScored([{ epoch: 1 }, { epoch: 2 }])).toBeUndefined();
    expect(
      bestScored([
        { epoch: 1, score: score('KID-nsfwMNv2', 0.3) },
        { epoch: 2, score: score('KID-nsfwMNv2', 0.1) },
        { epoch: 3, score: score('KID-nsfwMNv2', 0.1) },
        { epoch: 4 },
      ])?.epoch,
    ).toBe(2);
    // A lone score of another network is not compared with the others.
    expect(
      bestScored([
        { epoch: 1, score: score('KID-nsfwMNv2', 0.3) },
        { epoch: 2, score: score('KID-nsfwMNv2', 0.2) },
        { epoch: 3, score: score('KID-nsfwIncV3', 0.01) },
      ])?.epoch,
    ).toBe(2);
    expect(formatScore({ metric: 'KID-nsfwMNv2', kid: 0.15624, kidStd: 0.0041 })).toBe(
      'KID-nsfwMNv2 0.1562 ± 0.0041',
    );
    expect(formatKid(0.0002)).toBe('2.0e-4');
  });

  it('of the shipped demo-lorelei is epoch 2, for the registry, /models and /blend', async () => {
    const registry = new ModelRegistry([resolve('checkpoints')]);
    expect((await registry.bestSnapshot('demo-lorelei'))?.epoch).toBe(2);
    const catalog = new RegistryModelCatalog(registry, join(workDir, 'runs'));
    const lorelei = (await catalog.list()).find((m) => m.name === 'demo-lorelei')!;
    expect(lorelei).toMatchObject({ bestEpoch: 2, snapshots: [1, 2, 3, 5, 8] });
    expect(lorelei.score).toMatchObject({ metric: 'KID-nsfwMNv2' });
    expect(lorelei.score!.kid).toBeCloseTo(0.0386, 4);
    const faces = (await catalog.list()).find((m) => m.name === 'demo-faces')!;
    expect(faces.score?.kid).toBeCloseTo(0.0366, 4);
    expect(chooseSnapshot(lorelei, null)).toEqual({
      epoch: 2,
      note: 'epoch 2 of demo-lorelei: its best-scored snapshot (KID-nsfwMNv2 0.0386 ± 0.0022, lower is better)',
    });
    expect(chooseSnapshot(lorelei, 5)).toEqual({ epoch: 5 });
  });

  it('is listed by facestyle models, with every model score', async () => {
    const program = new Command().exitOverride();
    registerModels(program);
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    try {
      await program.parseAsync(['node', 'facestyle', 'models', '--data-dir', join(workDir, 'no-data')]);
    } finally {
      spy.mockRestore();
    }
    const text = out.join('');
    expect(text).toContain('demo-faces  demo · 64px · KID-nsfwMNv2 0.0366 ± 0.0020');
    expect(text).toContain(
      'demo-lorelei  finetune · 64px · from demo-faces · epochs 1, 2, 3, 5, 8 · best epoch 2: KID-nsfwMNv2 0.0386 ± 0.0022',
    );
    expect(text).toContain(join('checkpoints', 'demo-lorelei-epoch02.safetensors'));
  });

  it('of a run folder is what facestyle blend and grid take', async () => {
    const run = join(workDir, 'run');
    await mkdir(run);
    for (const epoch of [2, 5, 8])
      await copyFile(
        `checkpoints/demo-lorelei-epoch0${epoch}.safetensors`,
        join(run, `snapshot-epoch0000${epoch}.safetensors`),
      );
    const picked = await pickSnapshot(run);
    expect(picked.path).toBe(join(run, 'snapshot-epoch00002.safetensors'));
    expect(picked.note).toMatch(
      /^epoch 2 of .*run: the best-scored snapshot \(KID-nsfwMNv2 0\.0386 ± 0\.0022 against its training images/,
    );
    expect(await pickSnapshot('checkpoints/demo-lorelei-epoch05.safetensors')).toEqual({
      path: 'checkpoints/demo-lorelei-epoch05.safetensors',
    });
    const unscored = join(workDir, 'unscored');
    await mkdir(unscored);
    await copyFile(
      'test/fixtures/sg2_tiny/style.safetensors',
      join(unscored, 'snapshot-epoch00003.safetensors'),
    );
    expect((await pickSnapshot(unscored)).note).toMatch(/epoch 3 of .*: the newest snapshot/);
    await expect(pickSnapshot(join(workDir))).rejects.toThrow(
      /holds no snapshot-epochNNNNN\.safetensors files/,
    );
  });
});
