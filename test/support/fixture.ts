// Loads a parity fixture folder in the format of ../shared/fixtures/stylegan2 (meta.json,
// model.safetensors, style.safetensors, refs.safetensors): official names, PyTorch layouts, NCHW refs.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tfShapeOf, torchToTf } from '../../src/model/checkpoint/layout.ts';
import { SafetensorsReader } from '../../src/model/checkpoint/safetensors.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import type { ParamStore } from '../../src/model/params.ts';
import { tf } from '../../src/model/tf.ts';

export interface FixtureMeta {
  res: number;
  z_dim: number;
  w_dim: number;
  map_layers: number;
  cbase: number;
  cmax: number;
  mbstd: number;
  swaps?: number[];
}

export interface ParityFixture {
  dir: string;
  meta: FixtureMeta;
  config: ModelConfig;
  G: ParamStore;
  D: ParamStore;
  styleG: ParamStore;
  refs: Map<string, { shape: number[]; data: Float32Array }>;
}

export const DEFAULT_FIXTURE = resolve(fileURLToPath(new URL('../fixtures/sg2_tiny', import.meta.url)));

export function fixtureDir(): string {
  return process.env.FACESTYLE_PARITY_FIXTURE
    ? resolve(process.env.FACESTYLE_PARITY_FIXTURE)
    : DEFAULT_FIXTURE;
}

export function configFromMeta(meta: FixtureMeta): ModelConfig {
  const common = {
    resolution: meta.res,
    channelBase: meta.cbase,
    channelMax: meta.cmax,
    convClamp: 256,
    imgChannels: 3,
  };
  return {
    G: {
      ...common,
      zDim: meta.z_dim,
      wDim: meta.w_dim,
      mappingLayers: meta.map_layers,
      mappingLrMultiplier: 0.01,
    },
    D: { ...common, mbstdGroupSize: meta.mbstd, mbstdChannels: 1 },
  };
}

async function readNetworks(path: string): Promise<Map<string, ParamStore>> {
  const reader = await SafetensorsReader.open(path);
  const nets = new Map<string, ParamStore>();
  try {
    for (const name of reader.names()) {
      const dot = name.indexOf('.');
      const net = name.slice(0, dot);
      const local = name.slice(dot + 1);
      const { shape, data } = await reader.readFloat32(name);
      if (!nets.has(net)) nets.set(net, new Map());
      nets.get(net)!.set(local, tf.tensor(torchToTf(local, shape, data), tfShapeOf(local, shape)));
    }
  } finally {
    await reader.close();
  }
  return nets;
}

export async function loadParityFixture(dir = fixtureDir()): Promise<ParityFixture> {
  const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as FixtureMeta;
  const model = await readNetworks(join(dir, 'model.safetensors'));
  const style = await readNetworks(join(dir, 'style.safetensors'));
  const refsReader = await SafetensorsReader.open(join(dir, 'refs.safetensors'));
  const refs = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const name of refsReader.names()) refs.set(name, await refsReader.readFloat32(name));
  await refsReader.close();
  return {
    dir,
    meta,
    config: configFromMeta(meta),
    G: model.get('G')!,
    D: model.get('D')!,
    styleG: style.get('G')!,
    refs,
  };
}

/** NCHW reference -> NHWC tensor. */
export function nchwToNhwc(ref: { shape: number[]; data: Float32Array }): tf.Tensor4D {
  return tf.transpose(tf.tensor4d(ref.data, ref.shape as [number, number, number, number]), [0, 2, 3, 1]);
}

export async function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const d = tf.max(tf.abs(tf.sub(a, b)));
  const v = (await d.data())[0];
  d.dispose();
  return v;
}
