// Snapshot scoring inside a real (tiny, from scratch) training run on wasm: every snapshot carries
// its KID against the training images in its metadata and its progress event, the best epoch is
// the lowest score, the progress picture shows both curves, and the time budget is enforced.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDemoDataset } from '../../src/demo/data.ts';
import { initBackend } from '../../src/model/backend.ts';
import { readCheckpointInfo } from '../../src/model/checkpoint/info.ts';
import {
  defaultDiscriminatorConfig,
  defaultGeneratorConfig,
  type ModelConfig,
} from '../../src/model/config.ts';
import { initParams } from '../../src/model/init.ts';
import { Discriminator } from '../../src/model/networks/discriminator.ts';
import { Generator } from '../../src/model/networks/generator.ts';
import { TrainingSet } from '../../src/model/train/data.ts';
import { finetune, type TrainProgress } from '../../src/model/train/trainer.ts';
import { bestScored, readSnapshotScores } from '../../src/pipelines/score/best.ts';
import { writeProgressImage } from '../../src/pipelines/score/progress-image.ts';
import { TrainingSetScorer } from '../../src/pipelines/score/training.ts';

let workDir: string;
let data: TrainingSet;
const sizes = { resolution: 8, channelBase: 128, channelMax: 16 };
const config: ModelConfig = {
  G: defaultGeneratorConfig({ ...sizes, mappingLayers: 2, zDim: 8, wDim: 8 }),
  D: defaultDiscriminatorConfig({ ...sizes, mbstdGroupSize: 4 }),
};

beforeAll(async () => {
  await initBackend('wasm');
  workDir = await mkdtemp(join(tmpdir(), 'facestyle-score-train-'));
  await writeDemoDataset('lorelei', join(workDir, 'lorelei'), 16, 8);
  data = await TrainingSet.fromFolder(join(workDir, 'lorelei'), 8);
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('snapshot scores during training', () => {
  it('stores each snapshot score and names the lowest as the best epoch', async () => {
    const outDir = join(workDir, 'run');
    const scorer = new TrainingSetScorer(data, { samples: 12, minSamples: 8, budget: 1e6 });
    const events: TrainProgress[] = [];
    const skipped: Array<string | undefined> = [];
    const result = await finetune({
      outDir,
      name: 'tiny',
      config,
      networks: {
        G: initParams(Generator.specs(config.G), 1),
        D: initParams(Discriminator.specs(config.D!), 2),
      },
      data,
      epochs: 2,
      snapshotEvery: 1,
      hyper: { batchSize: 16, mirror: false },
      previewSeeds: [0, 1],
      onProgress: (e) => events.push(e),
      scoreSnapshot: async (G, secondsPerEpoch) => {
        expect(secondsPerEpoch).toBeGreaterThan(0);
        const outcome = await scorer.score(G, secondsPerEpoch);
        skipped.push(outcome.skipped);
        return outcome.score;
      },
    });
    expect(skipped).toEqual([undefined, undefined]);
    const scored = events.filter((e) => e.score);
    expect(scored.map((e) => e.epoch)).toEqual([1, 2]);
    for (const e of scored) {
      expect(e.score).toMatchObject({
        metric: 'KID-nsfwMNv2',
        against: data.id,
        numReal: 12,
        numFake: 12,
        psi: 1,
      });
      expect(e.score!.kid).toBeGreaterThan(0);
    }
    const stored = await readSnapshotScores(result.snapshots);
    expect(stored.map((s) => s.score)).toEqual(scored.map((e) => e.score));
    const info = await readCheckpointInfo(result.snapshots[0].path);
    expect(info.meta.scores).toEqual([scored[0].score]);
    const best = bestScored(stored)!;
    expect(best.score!.kid).toBe(Math.min(...scored.map((e) => e.score!.kid)));

    const picture = await writeProgressImage(join(outDir, 'progress.png'), {
      title: 'tiny',
      previewPath: join(outDir, 'preview-epoch00002.png'),
      losses: events.map((e) => ({ kimg: e.kimg, values: e.losses })),
      lossSeries: ['G', 'D'],
      scores: scored.map((e) => ({ kimg: e.epoch, values: { 'KID-nsfwMNv2': e.score!.kid } })),
      metric: 'KID-nsfwMNv2',
    });
    const meta = await sharp(picture).metadata();
    // preview | (loss chart over score chart): two 640-wide charts of 2 panels and 1 panel.
    expect(meta.width).toBeGreaterThan(640);
    expect(meta.height).toBe(2 * 150 + 28 + (150 + 28));
  });

  it('leaves a snapshot unscored, saying why, when the budget cannot pay for enough images', async () => {
    const scorer = new TrainingSetScorer(data, { samples: 12, minSamples: 8, budget: 0.1 });
    const G = new Generator(config.G, initParams(Generator.specs(config.G), 3));
    const outcome = await scorer.score(G, 0.01);
    expect(outcome.score).toBeNull();
    expect(outcome.skipped).toMatch(/an epoch \(0\.0 s\) is too short to score 8 images within 10% of it/);
    const tooFew = await new TrainingSetScorer(data).score(G, 100);
    expect(tooFew).toMatchObject({ score: null, skipped: 'fewer than 32 images to score with (16)' });
    const off = await new TrainingSetScorer(data, { samples: 0 }).score(G, 100);
    expect(off).toMatchObject({ score: null, skipped: 'scoring is off' });
  });
});
