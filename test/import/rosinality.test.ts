// rosinality/stylegan2-pytorch checkpoints: the names and shapes we produce are the state_dict keys
// its model.py registers, official -> rosinality -> official is the identity, and such files
// (safetensors, or torch.save with optimizer state and args) import to the same networks.
// Not verified against outputs of rosinality's own code (no PyTorch here): the mapping rests on
// reading its model.py and convert_weight.py.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { disposeCheckpoint, loadCheckpoint } from '../../src/model/checkpoint/io.ts';
import { tfToTorch } from '../../src/model/checkpoint/layout.ts';
import { writeSafetensors } from '../../src/model/checkpoint/safetensors.ts';
import { channelsAt } from '../../src/model/config.ts';
import { importWeights } from '../../src/model/import/importer.ts';
import { apply, type PickleNode, pyFloat, pyGlobal } from '../../src/model/import/pickle-writer.ts';
import { officialToRosinality, rosinalityToOfficial } from '../../src/model/import/rosinality.ts';
import {
  constantTensor,
  type SourceTensors,
  standardResampleFilter,
} from '../../src/model/import/source-tensors.ts';
import { float32TensorNode, orderedDictNode, writeTorchSave } from '../../src/model/import/torch-save.ts';
import { Generator } from '../../src/model/networks/generator.ts';
import type { ParamStore } from '../../src/model/params.ts';
import { tf } from '../../src/model/tf.ts';
import { loadParityFixture, maxAbsDiff, nchwToNhwc, type ParityFixture } from '../support/fixture.ts';
import { MODEL, readNetwork, type TorchArray } from './support/weights.ts';

let dir: string;
let fx: ParityFixture;
/** The fixture's base model with official names, G as G_ema. */
let official: SourceTensors;
let officialArrays: Map<string, TorchArray>;

beforeAll(async () => {
  await initBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'facestyle-rosinality-'));
  fx = await loadParityFixture();
  officialArrays = new Map();
  for (const [network, from] of [
    ['G_ema', 'G'],
    ['D', 'D'],
  ]) {
    for (const [name, array] of await readNetwork(MODEL, from))
      officialArrays.set(`${network}.${name}`, array);
  }
  official = new Map([...officialArrays].map(([name, a]) => [name, constantTensor(a.shape, a.data)]));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The state_dict keys rosinality's model.py registers for a generator of `size` with `nMlp` layers. */
function rosinalityGeneratorKeys(size: number, nMlp: number): string[] {
  const keys: string[] = [];
  for (let i = 1; i <= nMlp; i++) keys.push(`style.${i}.weight`, `style.${i}.bias`);
  keys.push('input.input');
  const styled = (p: string, up: boolean) => [
    `${p}.conv.weight`,
    `${p}.conv.modulation.weight`,
    `${p}.conv.modulation.bias`,
    ...(up ? [`${p}.conv.blur.kernel`] : []),
    `${p}.noise.weight`,
    `${p}.activate.bias`,
  ];
  const toRgb = (p: string, up: boolean) => [
    ...(up ? [`${p}.upsample.kernel`] : []),
    `${p}.conv.weight`,
    `${p}.conv.modulation.weight`,
    `${p}.conv.modulation.bias`,
    `${p}.bias`,
  ];
  keys.push(...styled('conv1', false), ...toRgb('to_rgb1', false));
  const logSize = Math.log2(size);
  for (let i = 0; i < logSize - 2; i++) {
    keys.push(
      ...styled(`convs.${2 * i}`, true),
      ...styled(`convs.${2 * i + 1}`, false),
      ...toRgb(`to_rgbs.${i}`, true),
    );
  }
  for (let i = 0; i < (logSize - 2) * 2 + 1; i++) keys.push(`noises.noise_${i}`);
  return keys;
}

function rosinalityDiscriminatorKeys(size: number): string[] {
  const keys = ['convs.0.0.weight', 'convs.0.1.bias'];
  const resBlock = ['conv1.0.weight', 'conv1.1.bias', 'conv2.0.kernel', 'conv2.1.weight', 'conv2.2.bias'];
  for (let i = 1; i <= Math.log2(size) - 2; i++) {
    for (const key of [...resBlock, 'skip.0.kernel', 'skip.1.weight']) keys.push(`convs.${i}.${key}`);
  }
  keys.push('final_conv.0.weight', 'final_conv.1.bias', 'final_linear.0.weight', 'final_linear.0.bias');
  keys.push('final_linear.1.weight', 'final_linear.1.bias');
  return keys;
}

async function valuesOf(
  tensors: SourceTensors,
): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of tensors) out.set(name, { shape: t.shape, data: await t.read() });
  return out;
}

async function writeRosinalitySafetensors(path: string, tensors: SourceTensors): Promise<void> {
  const values = await valuesOf(tensors);
  await writeSafetensors(
    path,
    [...values].map(([name, v]) => ({ name, shape: v.shape, data: v.data })),
  );
}

async function expectOfficialParams(params: ParamStore | undefined, network: string): Promise<void> {
  expect(params).toBeDefined();
  const expected = [...officialArrays].filter(([name]) => name.startsWith(`${network}.`));
  expect(params!.size).toBe(expected.length);
  for (const [fullName, want] of expected) {
    const name = fullName.slice(network.length + 1);
    const tensor = params!.get(name)!;
    const got = tfToTorch(name, tensor.shape, (await tensor.data()) as Float32Array);
    expect(got.shape, name).toEqual(want.shape);
    expect(Buffer.from(got.data.buffer).equals(Buffer.from(want.data.buffer)), fullName).toBe(true);
  }
}

describe('rosinality name mapping', () => {
  it("produces exactly the state_dict keys rosinality's Generator and Discriminator register", () => {
    const names = [...officialToRosinality(official).keys()];
    const expected = [
      ...rosinalityGeneratorKeys(32, 2).map((k) => `g_ema.${k}`),
      ...rosinalityDiscriminatorKeys(32).map((k) => `d.${k}`),
      'latent_avg',
    ];
    expect(names.sort()).toEqual(expected.sort());
  });

  it('uses rosinality shapes and blur kernels (x4 where they up-sample)', async () => {
    const ros = officialToRosinality(official);
    const channels = (res: number) => channelsAt(fx.config.G, res);
    expect(ros.get('g_ema.input.input')!.shape).toEqual([1, channels(4), 4, 4]);
    expect(ros.get('g_ema.convs.0.conv.weight')!.shape).toEqual([1, channels(8), channels(4), 3, 3]);
    expect(ros.get('g_ema.to_rgbs.2.conv.weight')!.shape).toEqual([1, 3, channels(32), 1, 1]);
    expect(ros.get('g_ema.to_rgb1.bias')!.shape).toEqual([1, 3, 1, 1]);
    expect(ros.get('g_ema.conv1.noise.weight')!.shape).toEqual([1]);
    expect(ros.get('g_ema.noises.noise_6')!.shape).toEqual([1, 1, 32, 32]);
    // ResBlock 3 is the official b8: conv1 maps channels(8) to channels(4).
    expect(ros.get('d.convs.3.conv2.1.weight')!.shape).toEqual([channels(4), channels(8), 3, 3]);
    const filter = standardResampleFilter();
    expect([...(await ros.get('g_ema.convs.2.conv.blur.kernel')!.read())]).toEqual([
      ...filter.map((v) => v * 4),
    ]);
    expect([...(await ros.get('g_ema.to_rgbs.0.upsample.kernel')!.read())]).toEqual([
      ...filter.map((v) => v * 4),
    ]);
    expect([...(await ros.get('d.convs.1.skip.0.kernel')!.read())]).toEqual([...filter]);
    // The last up-sampling conv of the generator is the official b32.conv0; its noise is noise_5.
    expect(await ros.get('g_ema.noises.noise_5')!.read()).toBe(
      officialArrays.get('G_ema.synthesis.b32.conv0.noise_const')!.data,
    );
  });

  it('official -> rosinality -> official is the identity', async () => {
    const { tensors, missingWAvg } = await rosinalityToOfficial(officialToRosinality(official), 'roundtrip');
    expect(missingWAvg).toEqual([]);
    const back = await valuesOf(tensors);
    expect([...back.keys()].sort()).toEqual([...officialArrays.keys()].sort());
    for (const [name, want] of officialArrays) {
      expect(back.get(name)!.shape, name).toEqual(want.shape);
      expect(Buffer.from(back.get(name)!.data.buffer).equals(Buffer.from(want.data.buffer)), name).toBe(true);
    }
  });

  it('refuses blur kernels other than [1,3,3,1]', async () => {
    const ros = officialToRosinality(official);
    ros.set('d.convs.2.skip.0.kernel', constantTensor([4, 4], new Float32Array(16).fill(1 / 16)));
    await expect(rosinalityToOfficial(ros, 'odd.pt')).rejects.toThrow(
      /not the standard \[1,3,3,1\] blur kernel/,
    );
  });
});

describe('importing rosinality checkpoints', () => {
  it('imports safetensors with rosinality names to the same networks, unclamped, groups of 4', async () => {
    const source = join(dir, 'rosinality.safetensors');
    await writeRosinalitySafetensors(source, officialToRosinality(official));
    const target = join(dir, 'from-rosinality.safetensors');
    const report = await importWeights(source, { out: target });
    expect(report.naming).toBe('rosinality');
    expect(report.networks).toEqual(['G_ema', 'D']);
    const ckpt = await loadCheckpoint(target);
    try {
      expect(ckpt.config.G).toEqual({ ...fx.config.G, convClamp: null });
      expect(ckpt.config.D).toEqual({ ...fx.config.D, convClamp: null, mbstdGroupSize: 4 });
      await expectOfficialParams(ckpt.G_ema, 'G_ema');
      await expectOfficialParams(ckpt.D, 'D');
      // The fixture's activations stay far below 256, so the unclamped model renders the same images.
      const G = new Generator(ckpt.config.G, ckpt.G_ema!);
      const ref = fx.refs.get('ws')!;
      const img = G.synthesize(tf.tensor3d(ref.data, ref.shape as [number, number, number]), {
        noiseMode: 'const',
      });
      expect(await maxAbsDiff(img, nchwToNhwc(fx.refs.get('img')!))).toBeLessThan(1e-3);
      img.dispose();
    } finally {
      disposeCheckpoint(ckpt);
    }
  });

  it('imports a training checkpoint (.pt with g, d, g_ema, optimizers, args) and estimates w_avg', async () => {
    const ros = await valuesOf(officialToRosinality(official));
    const storages: Array<{ key: string; data: Float32Array }> = [];
    const tensorNode = (name: string) => {
      const v = ros.get(name)!;
      const key = String(storages.length);
      storages.push({ key, data: v.data });
      return float32TensorNode(key, v.shape);
    };
    const stateDict = (prefix: string) =>
      orderedDictNode(
        [...ros.keys()]
          .filter((n) => n.startsWith(prefix))
          .map((n) => [n.slice(prefix.length), tensorNode(n)] as const),
      );
    const args = apply(pyGlobal('argparse', 'Namespace'), [], {
      newObject: true,
      state: new Map<PickleNode, PickleNode>([
        ['size', 32],
        ['r1', pyFloat(10)],
      ]),
    });
    const optimizer = new Map<PickleNode, PickleNode>([
      [
        'state',
        new Map<PickleNode, PickleNode>([
          [0, new Map<PickleNode, PickleNode>([['exp_avg', tensorNode('g_ema.style.1.bias')]])],
        ]),
      ],
      ['param_groups', [new Map<PickleNode, PickleNode>([['lr', pyFloat(0.002)]])]],
    ]);
    const root = new Map<PickleNode, PickleNode>([
      ['g', stateDict('g_ema.')],
      ['d', stateDict('d.')],
      ['g_ema', stateDict('g_ema.')],
      ['g_optim', optimizer],
      ['args', args],
      ['ada_aug_p', pyFloat(0.2)],
    ]);
    const source = join(dir, 'rosinality-train.pt');
    await writeTorchSave(
      source,
      root,
      storages.map(({ key, data }) => ({ key, bytes: async () => new Uint8Array(data.buffer) })),
    );
    const target = join(dir, 'from-train.safetensors');
    const report = await importWeights(source, { out: target, wAvgSamples: 4096 });
    expect(report.networks).toEqual(['G_ema', 'G', 'D']);
    expect(report.meta.extra?.wAvg).toMatch(/estimated from 4096 samples/);
    const ckpt = await loadCheckpoint(target);
    try {
      const wAvg = (await ckpt.G_ema!.get('mapping.w_avg')!.data()) as Float32Array;
      // An independent estimate: the mean of 4096 other w; the two agree to a few percent of w's spread.
      const G = new Generator(ckpt.config.G, ckpt.G_ema!);
      const ws = G.mapping.embed(
        ckpt.G_ema!,
        tf.randomNormal([4096, ckpt.config.G.zDim], 0, 1, 'float32', 7) as tf.Tensor2D,
      );
      const mean = (await tf.mean(ws, 0).data()) as Float32Array;
      const spread = (await tf.mean(tf.moments(ws, 0).variance.sqrt()).data())[0];
      for (let i = 0; i < mean.length; i++) expect(Math.abs(wAvg[i] - mean[i])).toBeLessThan(0.15 * spread);
      // Not the file's w_avg (rosinality training checkpoints have none), which was randomised.
      const fileWAvg = officialArrays.get('G_ema.mapping.w_avg')!.data;
      expect(Math.max(...wAvg.map((v, i) => Math.abs(v - fileWAvg[i])))).toBeGreaterThan(0.15 * spread);
      ws.dispose();
    } finally {
      disposeCheckpoint(ckpt);
    }
  });

  it('imports a bare rosinality generator state_dict as G_ema', async () => {
    const ros = officialToRosinality(official);
    const bare: SourceTensors = new Map();
    for (const [name, t] of ros) if (name.startsWith('g_ema.')) bare.set(name.slice('g_ema.'.length), t);
    const source = join(dir, 'bare.safetensors');
    await writeRosinalitySafetensors(source, bare);
    const report = await importWeights(source, { out: join(dir, 'bare-out.safetensors'), wAvgSamples: 256 });
    expect(report.networks).toEqual(['G_ema']);
    expect(report.naming).toBe('rosinality');
  });
});
