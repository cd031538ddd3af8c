// The demo models in checkpoints/ do what the product promises of them, measured on fixed seeds:
// a texture blend at a coarse swap layer keeps the base model's structure and takes the style
// model's colours. Also: the checkpoints a fresh clone has are complete and small.
import { stat } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_BASE, DEMO_STYLE } from '../../src/demo/run.ts';
import { initBackend } from '../../src/model/backend.ts';
import {
  type Checkpoint,
  disposeCheckpoint,
  generatorParams,
  loadImageGenerator,
} from '../../src/model/checkpoint/io.ts';
import { Generator } from '../../src/model/networks/generator.ts';
import { seedsToZ } from '../../src/model/sampling.ts';
import { tf } from '../../src/model/tf.ts';
import { blend } from '../../src/pipelines/blend.ts';
import { type ModelEntry, ModelRegistry } from '../../src/pipelines/registry.ts';

const SEEDS = Array.from({ length: 16 }, (_, i) => i);
const PSI = 0.7;
/** Swap resolution: b4 and b8 (pose, head shape) from the base, b16 to b64 from the style. */
const COARSE_LAYER = 16;
/** The structure is compared at this size, where colour detail and line work are gone. */
const STRUCTURE_SIZE = 8;

let registry: ModelRegistry;
let baseEntry: ModelEntry;
let styleEntries: ModelEntry[];
let base: Checkpoint;
let style: Checkpoint;

beforeAll(async () => {
  await initBackend('wasm');
  registry = new ModelRegistry(['checkpoints']);
  baseEntry = await registry.resolve(DEMO_BASE);
  styleEntries = await registry.snapshots(DEMO_STYLE);
  base = await loadImageGenerator(baseEntry.path);
  style = await loadImageGenerator(styleEntries.at(-1)!.path);
});
afterAll(() => {
  disposeCheckpoint(base);
  disposeCheckpoint(style);
});

/** Renders SEEDS with `params` from the ws of the base mapping, as the blend does (mapping: low). */
function render(params: ReturnType<typeof generatorParams>, ws: tf.Tensor3D): tf.Tensor4D {
  return tf.tidy(
    () =>
      new Generator(base.config.G, params)
        .synthesize(ws, { noiseMode: 'const' })
        .clipByValue(-1, 1) as tf.Tensor4D,
  );
}

/** Mean squared distance per image between two batches of images, averaged over the batch. */
function meanSquaredDistance(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.mean(tf.squaredDifference(a, b)).dataSync()[0]);
}

/** Grey images shrunk to STRUCTURE_SIZE: what is left is layout (head position, hair mass, shape). */
function structure(images: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const grey = tf.mean(images, 3, true) as tf.Tensor4D;
    return tf.image.resizeBilinear(grey, [STRUCTURE_SIZE, STRUCTURE_SIZE], true);
  });
}

/** Per image: mean and standard deviation of each RGB channel (layout-free colour statistics). */
function colourStats(images: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(images, [1, 2]);
    return tf.concat([mean, tf.sqrt(variance)], 1) as tf.Tensor2D;
  });
}

describe('the demo checkpoints', () => {
  it('has a base model and several style snapshots by epoch, small enough for a repository', async () => {
    expect(baseEntry).toMatchObject({ kind: 'demo', trainable: true, resolution: 64 });
    expect(styleEntries.length).toBeGreaterThanOrEqual(3);
    const epochs = styleEntries.map((s) => s.epoch);
    expect(epochs).toEqual([...epochs].sort((a, b) => (a ?? 0) - (b ?? 0)));
    for (const s of styleEntries) expect(s.parent).toBe(DEMO_BASE);
    let bytes = 0;
    for (const e of [baseEntry, ...styleEntries]) bytes += (await stat(e.path)).size;
    expect(bytes).toBeLessThan(40 * 1024 * 1024);
  });
});

describe('a texture blend of the demo models at a coarse layer', () => {
  let baseImages: tf.Tensor4D;
  let styleImages: tf.Tensor4D;
  let blendImages: tf.Tensor4D;

  beforeAll(() => {
    const baseG = new Generator(base.config.G, generatorParams(base));
    const ws = tf.tidy(() => baseG.map(seedsToZ(SEEDS, base.config.G.zDim), { psi: PSI }));
    const styleWs = tf.tidy(() =>
      new Generator(style.config.G, generatorParams(style)).map(seedsToZ(SEEDS, style.config.G.zDim), {
        psi: PSI,
      }),
    );
    baseImages = render(generatorParams(base), ws);
    styleImages = render(generatorParams(style), styleWs);
    const { params, owned } = blend(generatorParams(base), generatorParams(style), { layer: COARSE_LAYER });
    expect(owned).toHaveLength(0);
    blendImages = render(params, ws);
    ws.dispose();
    styleWs.dispose();
  });
  afterAll(() => {
    tf.dispose([baseImages, styleImages, blendImages]);
  });

  it('makes the style model look unlike the base (else the other checks would prove nothing)', () => {
    const apart = meanSquaredDistance(colourStats(baseImages), colourStats(styleImages));
    expect(apart).toBeGreaterThan(0.005);
  });

  it("keeps the base model's structure: downsampled, the blend is closer to the base than to the style", () => {
    const toBase = meanSquaredDistance(structure(blendImages), structure(baseImages));
    const toStyle = meanSquaredDistance(structure(blendImages), structure(styleImages));
    expect(toBase).toBeLessThan(toStyle);
  });

  it("takes the style model's colours: its colour statistics are closer to the style than to the base", () => {
    const toBase = meanSquaredDistance(colourStats(blendImages), colourStats(baseImages));
    const toStyle = meanSquaredDistance(colourStats(blendImages), colourStats(styleImages));
    expect(toStyle).toBeLessThan(toBase);
  });
});
