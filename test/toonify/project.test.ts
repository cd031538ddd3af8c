// Projection on the tiny parity fixture (32x32, official weights with randomised biases), on wasm:
// images the model rendered from known latents must be recovered, in W to the latent itself, in
// W+ with the toonify defaults well enough to tell the face from another; a cancelled projection
// stops within one step and leaks no tensor.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.ts';
import { initBackend } from '../../src/model/backend.ts';
import { type Checkpoint, disposeCheckpoint, loadCheckpoint } from '../../src/model/checkpoint/io.ts';
import { Discriminator } from '../../src/model/networks/discriminator.ts';
import { Generator } from '../../src/model/networks/generator.ts';
import { seedsToZ } from '../../src/model/sampling.ts';
import { NumpyRandomState } from '../../src/model/seeds.ts';
import { tf } from '../../src/model/tf.ts';
import {
  ProjectionCancelledError,
  project,
  projectionSchedule,
  psnr,
  withNoise,
  wStatistics,
} from '../../src/pipelines/projection.ts';

const FIXTURE = join(import.meta.dirname, '../fixtures/sg2_tiny/model.safetensors');

let ckpt: Checkpoint;
let G: Generator;
let D: Discriminator;

beforeAll(async () => {
  await initBackend('wasm');
  ckpt = await loadCheckpoint(FIXTURE);
  G = new Generator(ckpt.config.G, ckpt.G!);
  D = new Discriminator(ckpt.config.D!, ckpt.D!);
});
afterAll(() => disposeCheckpoint(ckpt));

/** The image the model renders for a seed (const noise), and its w. */
function rendered(seed: number): { image: tf.Tensor4D; w: tf.Tensor1D } {
  return tf.tidy(() => {
    const ws = G.map(seedsToZ([seed], G.cfg.zDim));
    return {
      image: G.synthesize(ws, { noiseMode: 'const' }),
      w: tf.reshape(tf.slice(ws, [0, 0, 0], [1, 1, -1]), [-1]) as tf.Tensor1D,
    };
  });
}

async function norm(t: tf.Tensor): Promise<number> {
  const n = tf.norm(t);
  const value = (await n.data())[0];
  n.dispose();
  return value;
}

describe('schedule', () => {
  const opts = {
    learningRate: 0.1,
    lrRampup: 0.05,
    lrRampdown: 0.25,
    initialNoiseFactor: 0.05,
    noiseRampLength: 0.75,
    wStd: 2,
  };
  it('ramps the learning rate up over 5% and down (cosine) over the last 25%, as projector.py', () => {
    expect(projectionSchedule(0, 1000, opts).learningRate).toBe(0);
    expect(projectionSchedule(25, 1000, opts).learningRate).toBeCloseTo(0.05, 10);
    expect(projectionSchedule(500, 1000, opts).learningRate).toBeCloseTo(0.1, 10);
    // Halfway through the ramp-down the cosine is at one half.
    expect(projectionSchedule(875, 1000, opts).learningRate).toBeCloseTo(0.05, 10);
    expect(projectionSchedule(999, 1000, opts).learningRate).toBeLessThan(1e-4);
  });
  it('fades the latent noise quadratically to nothing at 75% of the steps', () => {
    expect(projectionSchedule(0, 1000, opts).noiseScale).toBeCloseTo(0.1, 10);
    expect(projectionSchedule(375, 1000, opts).noiseScale).toBeCloseTo(0.1 * 0.25, 10);
    expect(projectionSchedule(750, 1000, opts).noiseScale).toBe(0);
  });
});

describe('W statistics', () => {
  it('maps the official projector z draws (RandomState(123)) and averages them', async () => {
    const { wAvg, wStd } = await wStatistics(G, 3);
    const z = Float32Array.from(new NumpyRandomState(123).randn(3 * G.cfg.zDim));
    const w = tf.tidy(() => G.mapping.embed(G.params, tf.tensor2d(z, [3, G.cfg.zDim])));
    const expectedAvg = tf.tidy(() => tf.mean(w, 0));
    const expectedStd = tf.tidy(() => tf.sqrt(tf.div(tf.sum(tf.square(tf.sub(w, expectedAvg))), 3)));
    const avg = await expectedAvg.data();
    for (let d = 0; d < G.cfg.wDim; d++) expect(wAvg[d]).toBeCloseTo(avg[d], 4);
    expect(wStd).toBeCloseTo((await expectedStd.data())[0], 3);
    tf.dispose([w, expectedAvg, expectedStd]);
  });
});

describe('recovery of generated images', () => {
  it('in W (pixel loss), recovers the latent of a seed and re-renders its image', async () => {
    const truth = rendered(1);
    const other = rendered(2);
    const { ws, noise, losses } = await project(G, truth.image, {
      steps: 200,
      wPlus: false,
      optimizeNoise: false,
    });
    expect(noise).toBeNull();
    // The latent itself: far closer to the seed's w than the start (the centre of W) was.
    const { wAvg } = await wStatistics(G);
    const recovered = tf.reshape(tf.slice(ws, [0, 0, 0], [1, 1, -1]), [-1]);
    const error = await norm(tf.sub(recovered, truth.w));
    const startError = await norm(tf.sub(tf.tensor1d(wAvg), truth.w));
    expect(error / startError).toBeLessThan(0.1); // measured 0.035
    // Rendering the returned latent afresh gives back the seed's image, and not another face.
    const image = G.synthesize(ws, { noiseMode: 'const' });
    const quality = await psnr(image, truth.image);
    expect(quality).toBeGreaterThan(38); // measured 44.2 dB
    expect(await psnr(image, other.image)).toBeLessThan(quality - 20); // measured 5.1 dB
    expect(losses.at(-1)!).toBeLessThan(losses[1] / 1000); // measured 1/8400
    tf.dispose([truth.image, truth.w, other.image, other.w, ws, recovered, image]);
  });

  it('in W+ with optimised noise (the toonify defaults), converges towards the seed image', async () => {
    const truth = rendered(1);
    const other = rendered(2);
    const { ws, noise } = await project(G, truth.image, {
      steps: 150,
      perceptual: { discriminator: D },
    });
    expect(ws.shape).toEqual([1, G.numWs, G.cfg.wDim]);
    expect(noise?.size).toBe(7); // b4: conv1; b8, b16, b32: conv0 and conv1
    const image = new Generator(G.cfg, withNoise(G.params, noise)).synthesize(ws, { noiseMode: 'const' });
    const quality = await psnr(image, truth.image);
    expect(quality).toBeGreaterThan(14); // measured 17.3 dB
    expect(await psnr(image, other.image)).toBeLessThan(quality - 8); // measured 5.1 dB
    tf.dispose([truth.image, truth.w, other.image, other.w, ws, image, ...noise!.values()]);
  });
});

describe('cancellation and refusals', () => {
  it('stops within one step of the abort, with a typed error and no tensor left behind', async () => {
    const truth = rendered(3);
    const before = tf.memory().numTensors;
    const controller = new AbortController();
    let lastStep = 0;
    const run = project(G, truth.image, {
      steps: 100,
      wAvgSamples: 100,
      perceptual: { discriminator: D },
      signal: controller.signal,
      onProgress: ({ step }) => {
        lastStep = step;
        if (step === 3) controller.abort();
      },
    });
    const error = await run.catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ProjectionCancelledError);
    expect(error).toBeInstanceOf(UserError);
    expect((error as ProjectionCancelledError).step).toBe(3);
    expect(lastStep).toBe(3);
    expect(tf.memory().numTensors).toBe(before);
    truth.image.dispose();
    truth.w.dispose();
  });

  it('refuses a target of the wrong size and a loss with nothing to minimise', async () => {
    const wrong = tf.zeros([1, 16, 16, 3]) as tf.Tensor4D;
    await expect(project(G, wrong)).rejects.toThrow(/needs one image \[1,32,32,3\]/);
    const target = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    await expect(project(G, target, { pixelWeight: 0 })).rejects.toThrow(UserError);
    await expect(project(G, target, { steps: 0 })).rejects.toThrow(/steps must be a positive/);
    tf.dispose([wrong, target]);
  });
});
