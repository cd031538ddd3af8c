// Network construction: networks/specs.ts declares each network's parameters once; the network
// classes read exactly those, the official export holds exactly those (so fresh models save and
// official weights load), and shapes are asserted on use.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { discriminatorTorchShapes, generatorTorchShapes } from '../src/model/checkpoint/io.ts';
import { SafetensorsReader } from '../src/model/checkpoint/safetensors.ts';
import {
  type DiscriminatorConfig,
  defaultDiscriminatorConfig,
  defaultGeneratorConfig,
  type GeneratorConfig,
  numWs,
} from '../src/model/config.ts';
import { initParams } from '../src/model/init.ts';
import { Discriminator } from '../src/model/networks/discriminator.ts';
import { Generator } from '../src/model/networks/generator.ts';
import type { ParamSpec } from '../src/model/networks/specs.ts';
import type { ParamStore } from '../src/model/params.ts';
import { tf } from '../src/model/tf.ts';
import { configFromMeta, DEFAULT_FIXTURE, type FixtureMeta } from './support/fixture.ts';

/** A ParamStore that remembers which names a forward pass read. */
class RecordingParams extends Map<string, tf.Tensor> {
  readonly read = new Set<string>();
  override get(name: string): tf.Tensor | undefined {
    this.read.add(name);
    return super.get(name);
  }
}

function recording(params: ParamStore): RecordingParams {
  return new RecordingParams(params);
}

/** The ops apply the fixed [1, 3, 3, 1] filter; the stored copies exist for the official state_dict. */
function readAtRunTime(specs: ParamSpec[]): string[] {
  return specs
    .filter((s) => !s.name.endsWith('resample_filter'))
    .map((s) => s.name)
    .sort();
}

const SMALL_G: GeneratorConfig = defaultGeneratorConfig({
  resolution: 16,
  channelBase: 128,
  channelMax: 16,
  zDim: 8,
  wDim: 8,
  mappingLayers: 3,
});
const SMALL_D: DiscriminatorConfig = defaultDiscriminatorConfig({
  resolution: 16,
  channelBase: 128,
  channelMax: 16,
});

describe('network parameter sets', () => {
  it('the generator reads exactly the parameters it declares', async () => {
    await tf.setBackend('cpu');
    const specs = Generator.specs(SMALL_G);
    const params = recording(initParams(specs, 1));
    const G = new Generator(SMALL_G, params);
    // psi < 1 reads w_avg; const noise reads every noise_const.
    tf.dispose(G.generate(tf.randomNormal([2, 8]) as tf.Tensor2D, { psi: 0.7, noiseMode: 'const' }));
    expect([...params.read].sort()).toEqual(readAtRunTime(specs));
    expect(specs.filter((s) => s.name.endsWith('resample_filter')).every((s) => s.buffer)).toBe(true);
  });

  it('the discriminator reads exactly the parameters it declares', async () => {
    await tf.setBackend('cpu');
    const specs = Discriminator.specs(SMALL_D);
    const params = recording(initParams(specs, 2));
    const D = new Discriminator(SMALL_D, params);
    tf.dispose(D.forward(tf.randomNormal([4, 16, 16, 3]) as tf.Tensor4D));
    expect([...params.read].sort()).toEqual(readAtRunTime(specs));
  });

  it('declares the tensors of the official export (NVlabs state_dict names and PyTorch shapes)', async () => {
    const meta = JSON.parse(await readFile(`${DEFAULT_FIXTURE}/meta.json`, 'utf8')) as FixtureMeta;
    const config = configFromMeta(meta);
    const reader = await SafetensorsReader.open(`${DEFAULT_FIXTURE}/model.safetensors`);
    try {
      const official = new Map<string, Map<string, number[]>>();
      for (const entry of reader.entries.values()) {
        const dot = entry.name.indexOf('.');
        const network = entry.name.slice(0, dot);
        if (!official.has(network)) official.set(network, new Map());
        official.get(network)!.set(entry.name.slice(dot + 1), entry.shape);
      }
      expect(official.size).toBeGreaterThan(0);
      for (const [network, tensors] of official) {
        const declared =
          network === 'D' ? discriminatorTorchShapes(config.D!) : generatorTorchShapes(config.G);
        expect(new Map([...declared].sort()), network).toEqual(new Map([...tensors].sort()));
      }
    } finally {
      await reader.close();
    }
  });

  it('runs a freshly initialised 8x8 generator and discriminator end to end', async () => {
    await tf.setBackend('cpu');
    const gCfg = defaultGeneratorConfig({
      resolution: 8,
      channelBase: 64,
      channelMax: 16,
      zDim: 8,
      wDim: 8,
      mappingLayers: 2,
    });
    const G = new Generator(gCfg, initParams(Generator.specs(gCfg), 3));
    const D = new Discriminator(
      defaultDiscriminatorConfig({ resolution: 8, channelBase: 64, channelMax: 16 }),
      initParams(
        Discriminator.specs(defaultDiscriminatorConfig({ resolution: 8, channelBase: 64, channelMax: 16 })),
        4,
      ),
    );
    const img = G.generate(tf.randomNormal([4, 8]) as tf.Tensor2D);
    expect(img.shape).toEqual([4, 8, 8, 3]);
    expect(G.numWs).toBe(numWs(8));
    const logits = D.forward(img);
    expect(logits.shape).toEqual([4, 1]);
    const values = await logits.data();
    expect([...values].every(Number.isFinite)).toBe(true);
  });

  it('rejects inputs of the wrong shape with a message naming the layer', () => {
    const gCfg = defaultGeneratorConfig({
      resolution: 8,
      channelBase: 64,
      channelMax: 16,
      zDim: 8,
      wDim: 8,
      mappingLayers: 2,
    });
    const G = new Generator(gCfg, initParams(Generator.specs(gCfg)));
    expect(() => G.map(tf.zeros([2, 9]) as tf.Tensor2D)).toThrow(/mapping input z: expected shape \[\?,8\]/);
    expect(() => G.synthesize(tf.zeros([2, 3, 8]) as tf.Tensor3D)).toThrow(/synthesis input ws/);
  });
});
