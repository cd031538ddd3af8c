// Shared helpers for the training tests: the tiny model the loop tests train, host copies of
// tensors, comparisons across backends and central finite differences along a direction.
import { expect } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import {
  defaultDiscriminatorConfig,
  defaultGeneratorConfig,
  type ModelConfig,
} from '../../src/model/config.ts';
import { initParams } from '../../src/model/init.ts';
import { Discriminator } from '../../src/model/networks/discriminator.ts';
import { Generator } from '../../src/model/networks/generator.ts';
import type { ParamStore } from '../../src/model/params.ts';
import { tf } from '../../src/model/tf.ts';

/** The training-loop tests' model: 8x8, 16 channels at most, z and w 8. */
export const TINY_RES = 8;
export const TINY_CONFIG: ModelConfig = {
  G: defaultGeneratorConfig({
    resolution: TINY_RES,
    channelBase: 128,
    channelMax: 16,
    zDim: 8,
    wDim: 8,
    mappingLayers: 2,
  }),
  D: defaultDiscriminatorConfig({ resolution: TINY_RES, channelBase: 128, channelMax: 16 }),
};

/** Fresh tiny networks: G from `seed`, D from `seed + 1`. */
export function tinyNetworks(seed: number): { G: ParamStore; D: ParamStore } {
  return {
    G: initParams(Generator.specs(TINY_CONFIG.G), seed),
    D: initParams(Discriminator.specs(TINY_CONFIG.D!), seed + 1),
  };
}

/** Mean RGB of the tiny generator's images for fixed latents, in [-1, 1]. */
export async function meanColour(params: ParamStore): Promise<number[]> {
  const G = new Generator(TINY_CONFIG.G, params);
  const images = G.generate(tf.randomNormal([16, 8], 0, 1, 'float32', 99) as tf.Tensor2D, {
    noiseMode: 'const',
  });
  return Array.from(await tf.mean(images, [0, 1, 2]).data());
}

export const TRAIN_BACKENDS = ['cpu', 'wasm'] as const;

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export async function toHost(t: tf.Tensor): Promise<HostTensor> {
  return { shape: [...t.shape], data: Float32Array.from(await t.data()) };
}

export function fromHost(h: HostTensor): tf.Tensor {
  return tf.tensor(h.data, h.shape);
}

/** Runs `fn` on the cpu backend (which has every native gradient kernel), then switches back. */
export async function onCpu<T>(fn: () => T | Promise<T>): Promise<T> {
  const previous = tf.getBackend();
  await initBackend('cpu');
  try {
    return await fn();
  } finally {
    await initBackend(previous);
  }
}

/** max |a - b| / max(max |b|, floor): one number per tensor, robust to entries near 0. */
export function relativeError(a: HostTensor, b: HostTensor, floor = 1e-6): number {
  expect(a.shape).toEqual(b.shape);
  let diff = 0;
  let scale = floor;
  for (let i = 0; i < a.data.length; i++) {
    diff = Math.max(diff, Math.abs(a.data[i] - b.data[i]));
    scale = Math.max(scale, Math.abs(b.data[i]));
  }
  return diff / scale;
}

export function dot(a: HostTensor, b: HostTensor): number {
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += a.data[i] * b.data[i];
  return s;
}

/**
 * Central difference of a scalar function of several tensors along the direction `v` (one entry
 * per argument): (f(x + eps v) - f(x - eps v)) / 2 eps, the directional derivative <grad f, v>.
 */
export async function directionalDerivative(
  f: (...args: tf.Tensor[]) => tf.Scalar,
  xs: HostTensor[],
  vs: HostTensor[],
  eps: number,
): Promise<number> {
  const at = async (sign: number) => {
    const moved = xs.map((x, i) => {
      const data = x.data.map((value, j) => value + sign * eps * vs[i].data[j]);
      return tf.tensor(data, x.shape);
    });
    const y = f(...moved);
    const value = (await y.data())[0];
    tf.dispose([y, ...moved]);
    return value;
  };
  return ((await at(1)) - (await at(-1))) / (2 * eps);
}

export function randomHost(shape: number[], seed: number, scale = 1): HostTensor {
  const t = tf.randomNormal(shape, 0, scale, 'float32', seed);
  const data = t.dataSync() as Float32Array;
  t.dispose();
  return { shape, data: Float32Array.from(data) };
}
