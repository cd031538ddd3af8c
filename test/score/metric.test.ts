// KID on real features (nsfwjs MobileNetV2, wasm) of avatars rendered offline: the metric must
// behave before anything relies on it. Small sets (32 a side) keep this to about a minute on two
// shared cores; the thresholds are in units of the score's own standard deviation.
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderDemoFace } from '../../src/demo/data.ts';
import type { RgbImage } from '../../src/images/tensor-image.ts';
import { initBackend } from '../../src/model/backend.ts';
import { NumpyRandomState } from '../../src/model/seeds.ts';
import { type FeatureExtractor, sharedFeatureExtractor } from '../../src/pipelines/score/features.ts';
import { type FeatureMatrix, kernelInceptionDistance } from '../../src/pipelines/score/kid.ts';
import { decodeImage } from '../../src/pipelines/score/sources.ts';

const SIDE = 32;
const RES = 64;
let extractor: FeatureExtractor;
let loreleiA: RgbImage[];
let loreleiB: RgbImage[];
let featuresA: FeatureMatrix;
let featuresB: FeatureMatrix;

async function render(dataset: 'lorelei' | 'faces', first: number, count: number): Promise<RgbImage[]> {
  const out: RgbImage[] = [];
  for (let seed = first; seed < first + count; seed++)
    out.push(await decodeImage(await renderDemoFace(dataset, seed, RES), RES));
  return out;
}

async function blurred(images: RgbImage[], sigma: number): Promise<RgbImage[]> {
  return Promise.all(
    images.map(async (image) => ({
      ...image,
      data: await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
        .blur(sigma)
        .raw()
        .toBuffer(),
    })),
  );
}

function noisy(images: RgbImage[], std: number, seed: number): RgbImage[] {
  const rng = new NumpyRandomState(seed);
  return images.map((image) => {
    const data = Buffer.from(image.data);
    for (let i = 0; i < data.length; i++)
      data[i] = Math.max(0, Math.min(255, Math.round(data[i] + 255 * std * rng.gauss())));
    return { ...image, data };
  });
}

const kid = (fake: FeatureMatrix) => kernelInceptionDistance(featuresA, fake, { seed: 0 });

beforeAll(async () => {
  await initBackend('wasm');
  extractor = await sharedFeatureExtractor('nsfw-mobilenet-v2');
  loreleiA = await render('lorelei', 0, SIDE);
  loreleiB = await render('lorelei', SIDE, SIDE);
  featuresA = await extractor.features(loreleiA);
  featuresB = await extractor.features(loreleiB);
}, 300_000);

describe('KID-nsfwMNv2 on rendered avatars', () => {
  it('pools MobileNetV2 features: 1280 finite values per image, identical for identical images', async () => {
    expect(featuresA.dims).toBe(1280);
    expect(featuresA.values.every(Number.isFinite)).toBe(true);
    const again = await extractor.features(loreleiA.slice(0, 2));
    expect(Array.from(again.values)).toEqual(Array.from(featuresA.values.slice(0, 2 * 1280)));
  });

  it('scores two disjoint halves of one set near zero, and two styles far apart', async () => {
    const halves = kid(featuresB);
    expect(Math.abs(halves.kid)).toBeLessThan(3 * halves.kidStd);
    const faces = await extractor.features(await render('faces', 0, SIDE));
    const styles = kid(faces);
    expect(styles.kid).toBeGreaterThan(5 * styles.kidStd);
    expect(styles.kid).toBeGreaterThan(10 * Math.max(Math.abs(halves.kid), halves.kidStd));
  });

  it('rises monotonically with blur and with noise on one side', async () => {
    const blurScores = [kid(featuresB).kid];
    for (const sigma of [1, 2, 4])
      blurScores.push(kid(await extractor.features(await blurred(loreleiB, sigma))).kid);
    const noiseScores = [kid(featuresB).kid];
    for (const std of [0.04, 0.12, 0.3])
      noiseScores.push(kid(await extractor.features(noisy(loreleiB, std, 1))).kid);
    for (const scores of [blurScores, noiseScores]) {
      for (let i = 1; i < scores.length; i++) expect(scores[i]).toBeGreaterThan(scores[i - 1]);
    }
  });

  it('gives the same score on the same images and seed, run after run', async () => {
    const again = await extractor.features(loreleiB);
    expect(kernelInceptionDistance(featuresA, again, { seed: 3 })).toEqual(
      kernelInceptionDistance(featuresA, featuresB, { seed: 3 }),
    );
  });
});
