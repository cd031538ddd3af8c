// Importing official weights: the torch.save fixture reproduces the parity outputs, a network
// pickle built here from the documented persistence format imports to the same networks, legacy
// torch.save files work, and wrong, hostile or damaged files fail early with a clear message.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import {
  type Checkpoint,
  CheckpointError,
  disposeCheckpoint,
  loadCheckpoint,
} from '../../src/model/checkpoint/io.ts';
import { tfToTorch } from '../../src/model/checkpoint/layout.ts';
import { importWeights } from '../../src/model/import/importer.ts';
import { UnsafePickleError } from '../../src/model/import/pickle.ts';
import { apply, type PickleNode, pyGlobal } from '../../src/model/import/pickle-writer.ts';
import { float32TensorNode, orderedDictNode, writeTorchSave } from '../../src/model/import/torch-save.ts';
import { writeStoredZip } from '../../src/model/import/zip.ts';
import { Generator } from '../../src/model/networks/generator.ts';
import type { ParamStore } from '../../src/model/params.ts';
import { tf } from '../../src/model/tf.ts';
import { loadParityFixture, maxAbsDiff, nchwToNhwc, type ParityFixture } from '../support/fixture.ts';
import {
  decorateDiscriminator,
  decorateGenerator,
  G_STATE_DICT,
  legacyTensorNode,
  legacyTorchSave,
  MODEL,
  moduleTree,
  networkPickle,
  readNetwork,
  STYLE,
  type TorchArray,
} from './support/weights.ts';

const ABS_TOL = 1e-3;

let dir: string;
let fx: ParityFixture;
let modelG: Map<string, TorchArray>;
let modelD: Map<string, TorchArray>;
let styleG: Map<string, TorchArray>;
let counter = 0;
const out = () => join(dir, `out-${counter++}.safetensors`);

beforeAll(async () => {
  await initBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'facestyle-import-'));
  fx = await loadParityFixture();
  modelG = await readNetwork(MODEL, 'G');
  modelD = await readNetwork(MODEL, 'D');
  styleG = await readNetwork(STYLE, 'G');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every parameter equals the source tensor bit for bit (compared in PyTorch layout). */
async function expectSameTensors(
  params: ParamStore | undefined,
  expected: Map<string, TorchArray>,
): Promise<void> {
  expect(params).toBeDefined();
  expect([...params!.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [name, tensor] of params!) {
    const torch = tfToTorch(name, tensor.shape, (await tensor.data()) as Float32Array);
    const want = expected.get(name)!;
    expect(torch.shape, name).toEqual(want.shape);
    expect(Buffer.from(torch.data.buffer).equals(Buffer.from(want.data.buffer)), name).toBe(true);
  }
}

async function expectParityImages(ckpt: Checkpoint): Promise<void> {
  const G = new Generator(ckpt.config.G, ckpt.G_ema!);
  const ref = fx.refs.get('ws')!;
  const ws = tf.tensor3d(ref.data, ref.shape as [number, number, number]);
  const img = G.synthesize(ws, { noiseMode: 'const' });
  expect(await maxAbsDiff(img, nchwToNhwc(fx.refs.get('img')!))).toBeLessThan(ABS_TOL);
  tf.dispose([ws, img]);
}

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

describe('torch.save state_dict (the fixture G_state_dict.pt)', () => {
  it('imports to the base generator and reproduces the parity images', async () => {
    const target = out();
    const report = await importWeights(G_STATE_DICT, { out: target, name: 'sg2-tiny' });
    expect(report.format).toBe('torch-zip');
    expect(report.naming).toBe('nvidia');
    expect(report.networks).toEqual(['G_ema']);
    const ckpt = await loadCheckpoint(target);
    try {
      expect(ckpt.config.G).toEqual(fx.config.G);
      expect(ckpt.meta.name).toBe('sg2-tiny');
      expect(ckpt.meta.kind).toBe('import');
      expect(ckpt.meta.extra).toMatchObject({
        importedFrom: 'G_state_dict.pt',
        sourceSha256: await sha256(G_STATE_DICT),
        sourceFormat: 'torch-zip',
      });
      await expectSameTensors(ckpt.G_ema, modelG);
      await expectParityImages(ckpt);
    } finally {
      disposeCheckpoint(ckpt);
    }
  });

  it('reads a state_dict nested under network keys, leaving optimizer state unread', async () => {
    const storages: Array<{ key: string; data: Float32Array }> = [];
    const stateDict = (tensors: Map<string, TorchArray>) =>
      orderedDictNode(
        [...tensors].map(([name, t]) => {
          const key = String(storages.length);
          storages.push({ key, data: t.data });
          return [name, float32TensorNode(key, t.shape)] as const;
        }),
      );
    const root = new Map<PickleNode, PickleNode>([
      ['G_ema', stateDict(modelG)],
      ['D', stateDict(modelD)],
      // A storage record the file lacks: reading it would fail, so the test proves it is skipped.
      ['optimizer', new Map<PickleNode, PickleNode>([['exp_avg', float32TensorNode('missing', [3])]])],
      ['kimg', 1234],
    ]);
    const source = join(dir, 'nested.pt');
    await writeTorchSave(
      source,
      root,
      storages.map(({ key, data }) => ({ key, bytes: async () => new Uint8Array(data.buffer) })),
    );
    const target = out();
    const report = await importWeights(source, { out: target });
    expect(report.networks).toEqual(['G_ema', 'D']);
    const ckpt = await loadCheckpoint(target);
    try {
      await expectSameTensors(ckpt.G_ema, modelG);
      await expectSameTensors(ckpt.D, modelD);
    } finally {
      disposeCheckpoint(ckpt);
    }
  });

  it('imports a legacy (non-zip) torch.save file', async () => {
    const storages: Array<{ key: string; data: Float32Array }> = [];
    const root = orderedDictNode(
      [...modelG].map(([name, t]) => {
        const key = `9400${storages.length}`;
        storages.push({ key, data: t.data });
        return [name, legacyTensorNode(key, t.shape)] as const;
      }),
    );
    const source = join(dir, 'legacy.pt');
    await writeFile(source, legacyTorchSave(root, storages));
    const target = out();
    expect((await importWeights(source, { out: target })).format).toBe('torch-legacy');
    const ckpt = await loadCheckpoint(target);
    try {
      await expectSameTensors(ckpt.G_ema, modelG);
    } finally {
      disposeCheckpoint(ckpt);
    }
  });
});

describe('NVIDIA network pickles', () => {
  for (const protocol of [2, 4] as const) {
    it(`imports G_ema, G and D from the module records (protocol ${protocol})`, async () => {
      const source = join(dir, `network-${protocol}.pkl`);
      await writeFile(
        source,
        networkPickle(
          {
            G_ema: decorateGenerator(moduleTree('Generator', modelG)),
            G: decorateGenerator(moduleTree('Generator', styleG)),
            D: decorateDiscriminator(moduleTree('Discriminator', modelD), 2),
          },
          protocol,
        ),
      );
      const target = out();
      const report = await importWeights(source, { out: target });
      expect(report.format).toBe('pickle');
      expect(report.networks).toEqual(['G_ema', 'G', 'D']);
      const ckpt = await loadCheckpoint(target);
      try {
        // The group size is not in the shapes: it comes from the pickled MinibatchStdLayer.
        expect(ckpt.config).toEqual({ G: fx.config.G, D: { ...fx.config.D, mbstdGroupSize: 2 } });
        await expectSameTensors(ckpt.G_ema, modelG);
        await expectSameTensors(ckpt.G, styleG);
        await expectSameTensors(ckpt.D, modelD);
        await expectParityImages(ckpt);
      } finally {
        disposeCheckpoint(ckpt);
      }
      expect(existsSync('/tmp/facestyle-pwned')).toBe(false);
    });
  }

  it('takes conv_clamp from the pickled layers', async () => {
    const source = join(dir, 'noclamp.pkl');
    await writeFile(
      source,
      networkPickle({ G_ema: decorateGenerator(moduleTree('Generator', modelG), { convClamp: null }) }),
    );
    const report = await importWeights(source, { out: out() });
    expect(report.config.G.convClamp).toBeNull();
  });

  it('refuses conditional models early', async () => {
    const source = join(dir, 'conditional.pkl');
    await writeFile(
      source,
      networkPickle({ G_ema: decorateGenerator(moduleTree('Generator', modelG), { cDim: 10 }) }),
    );
    await expect(importWeights(source, { out: out() })).rejects.toThrow(/conditional model \(c_dim=10\)/);
  });

  it('refuses StyleGAN3 (alias-free) pickles early', async () => {
    const sg3 = new Map(modelG);
    sg3.set('synthesis.input.weight', { shape: [4, 2], data: new Float32Array(8) });
    sg3.set('synthesis.L0_36_512.weight', { shape: [1], data: new Float32Array(1) });
    const source = join(dir, 'sg3.pkl');
    await writeFile(source, networkPickle({ G_ema: decorateGenerator(moduleTree('Generator', sg3)) }));
    await expect(importWeights(source, { out: out() })).rejects.toThrow(/StyleGAN3/);
  });
});

describe('files that cannot be imported', () => {
  it('refuses a torch.save whose data.pkl calls anything else, and writes nothing', async () => {
    const source = join(dir, 'evil.pt');
    await writeTorchSave(source, apply(pyGlobal('os', 'system'), ['touch /tmp/facestyle-pwned']), []);
    const target = out();
    await expect(importWeights(source, { out: target })).rejects.toThrow(UnsafePickleError);
    await expect(importWeights(source, { out: target })).rejects.toThrow(/os\.system/);
    expect(existsSync(target)).toBe(false);
    expect(existsSync('/tmp/facestyle-pwned')).toBe(false);
  });

  it('reports truncated downloads of .pt and .pkl files', async () => {
    const bytes = await readFile(G_STATE_DICT);
    const cutPt = join(dir, 'cut.pt');
    await writeFile(cutPt, bytes.subarray(0, Math.floor(bytes.length * 0.9)));
    await expect(importWeights(cutPt, { out: out() })).rejects.toThrow(/central directory.*truncated/);
    const pickle = networkPickle({ G_ema: decorateGenerator(moduleTree('Generator', modelG)) });
    const cutPkl = join(dir, 'cut.pkl');
    await writeFile(cutPkl, pickle.subarray(0, pickle.length - 100));
    await expect(importWeights(cutPkl, { out: out() })).rejects.toThrow(/truncated/);
  });

  it('reports a storage record shorter than its tensors need', async () => {
    const source = join(dir, 'short-storage.pt');
    const names = [...modelG.keys()];
    const root = orderedDictNode(
      names.map((name, i) => [name, float32TensorNode(String(i), modelG.get(name)!.shape)] as const),
    );
    const storages = names.map((name, i) => ({
      key: String(i),
      bytes: async () => {
        const data = new Uint8Array(modelG.get(name)!.data.buffer);
        return name === 'synthesis.b32.conv1.weight' ? data.subarray(0, data.length - 4) : data;
      },
    }));
    await writeTorchSave(source, root, storages);
    const record = `archive/data/${names.indexOf('synthesis.b32.conv1.weight')}`;
    await expect(importWeights(source, { out: out() })).rejects.toThrow(
      new RegExp(`storage ${record} has \\d+ bytes but its tensors need \\d+: the file is truncated`),
    );
  });

  it('names unknown formats, TorchScript archives and non-float tensors', async () => {
    const text = join(dir, 'notes.txt');
    await writeFile(text, 'these are not weights\n');
    await expect(importWeights(text, { out: out() })).rejects.toThrow(/unknown format/);
    const empty = join(dir, 'empty.pkl');
    await writeFile(empty, '');
    await expect(importWeights(empty, { out: out() })).rejects.toThrow(/the file is empty/);
    const script = join(dir, 'script.pt');
    async function* records() {
      yield { name: 'model/constants.pkl', data: Buffer.from([0x80, 0x02, 0x29, 0x2e]) };
      yield { name: 'model/code/__torch__.py', data: Buffer.from('def forward(self): ...\n') };
    }
    await writeStoredZip(script, records());
    await expect(importWeights(script, { out: out() })).rejects.toThrow(/TorchScript/);
    await expect(importWeights(join(dir, 'missing.pkl'), { out: out() })).rejects.toThrow(CheckpointError);
  });
});
