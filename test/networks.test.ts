// Network construction: the parameter set a Generator/Discriminator declares is exactly the official
// state_dict (so fresh models save and official weights load), and shapes are asserted on use.
import { describe, expect, it } from 'vitest';
import { discriminatorTorchShapes, generatorTorchShapes } from '../src/model/checkpoint/io.ts';
import { tfShapeOf } from '../src/model/checkpoint/layout.ts';
import { defaultDiscriminatorConfig, defaultGeneratorConfig, numWs } from '../src/model/config.ts';
import { initParams } from '../src/model/init.ts';
import { Discriminator } from '../src/model/networks/discriminator.ts';
import { Generator } from '../src/model/networks/generator.ts';
import { tf } from '../src/model/tf.ts';

function declared(specs: Array<{ name: string; shape: number[] }>): Map<string, number[]> {
  return new Map(specs.map((s) => [s.name, s.shape]));
}

function expected(torch: Map<string, number[]>): Map<string, number[]> {
  return new Map([...torch].map(([name, shape]) => [name, tfShapeOf(name, shape)]));
}

describe('network parameter sets', () => {
  for (const [res, base, max, map] of [
    [32, 512, 64, 2],
    [256, 16384, 512, 8],
    [1024, 32768, 512, 8],
  ]) {
    it(`generator ${res}px (base ${base}, max ${max}, ${map} mapping layers) declares the official tensors`, () => {
      const cfg = defaultGeneratorConfig({
        resolution: res,
        channelBase: base,
        channelMax: max,
        mappingLayers: map,
        zDim: 64,
        wDim: 64,
      });
      expect(declared(Generator.specs(cfg))).toEqual(expected(generatorTorchShapes(cfg)));
    });
    it(`discriminator ${res}px declares the official tensors`, () => {
      const cfg = defaultDiscriminatorConfig({ resolution: res, channelBase: base, channelMax: max });
      expect(declared(Discriminator.specs(cfg))).toEqual(expected(discriminatorTorchShapes(cfg)));
    });
  }

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
