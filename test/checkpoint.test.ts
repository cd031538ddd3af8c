import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.ts';
import {
  type Checkpoint,
  CheckpointError,
  type CheckpointMeta,
  discriminatorTorchShapes,
  disposeCheckpoint,
  generatorParams,
  generatorTorchShapes,
  inferChannelBaseMax,
  inferConfig,
  loadCheckpoint,
  loadImageGenerator,
  readCheckpointInfo,
  saveCheckpoint,
} from '../src/model/checkpoint/io.ts';
import { SafetensorsReader, writeSafetensors } from '../src/model/checkpoint/safetensors.ts';
import { defaultGeneratorConfig, type ModelConfig, paper256Config } from '../src/model/config.ts';

const FIXTURE_DIR = new URL('./fixtures/sg2_tiny/', import.meta.url).pathname;
const MODEL = join(FIXTURE_DIR, 'model.safetensors');
const STYLE = join(FIXTURE_DIR, 'style.safetensors');

let dir: string;
let fixture: Checkpoint;
let fixtureShapes: Map<string, number[]>;

async function shapesOf(path: string): Promise<Map<string, number[]>> {
  const reader = await SafetensorsReader.open(path);
  try {
    return new Map([...reader.entries].map(([name, entry]) => [name, entry.shape]));
  } finally {
    await reader.close();
  }
}

/** Copies the fixture's tensors (optionally renamed or filtered) into a new file with `metadata`. */
async function rewriteFixture(
  name: string,
  rename: (tensorName: string) => string | undefined,
  metadata: Record<string, string> = {},
): Promise<string> {
  const reader = await SafetensorsReader.open(MODEL);
  const tensors = [];
  try {
    for (const tensorName of reader.names()) {
      const renamed = rename(tensorName);
      if (renamed !== undefined) tensors.push({ ...(await reader.readFloat32(tensorName)), name: renamed });
    }
  } finally {
    await reader.close();
  }
  const path = join(dir, name);
  await writeSafetensors(path, tensors, metadata);
  return path;
}

function fixtureMeta(overrides: Partial<CheckpointMeta> = {}): CheckpointMeta {
  return { name: 'tiny', kind: 'base', createdAt: '2025-01-02T03:04:05.000Z', ...overrides };
}

async function bitsOf(tensor: { data(): Promise<unknown> }): Promise<Uint32Array> {
  const values = (await tensor.data()) as Float32Array;
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/** Index of the first differing element, or -1 (toEqual on large typed arrays is slow). */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function expectCheckpointError(
  promise: Promise<unknown>,
  ...patterns: RegExp[]
): Promise<CheckpointError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CheckpointError);
  expect(err).toBeInstanceOf(UserError);
  for (const pattern of patterns) expect((err as Error).message).toMatch(pattern);
  return err as CheckpointError;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'facestyle-checkpoint-'));
  fixture = await loadCheckpoint(MODEL);
  fixtureShapes = await shapesOf(MODEL);
});
afterAll(async () => {
  disposeCheckpoint(fixture);
  await rm(dir, { recursive: true, force: true });
});

describe('loading the official-name fixture', () => {
  it('infers the configuration in meta.json', async () => {
    const meta = JSON.parse(await readFile(join(FIXTURE_DIR, 'meta.json'), 'utf8'));
    const shared = { resolution: meta.res, channelBase: meta.cbase, channelMax: meta.cmax, imgChannels: 3 };
    expect(fixture.config).toEqual({
      G: {
        ...shared,
        zDim: meta.z_dim,
        wDim: meta.w_dim,
        mappingLayers: meta.map_layers,
        convClamp: 256,
        mappingLrMultiplier: 0.01,
      },
      D: { ...shared, convClamp: 256, mbstdGroupSize: meta.mbstd, mbstdChannels: 1 },
    });
    expect(fixture.meta).toMatchObject({ name: 'model', kind: 'import' });
    expect(Number.isNaN(Date.parse(fixture.meta.createdAt))).toBe(false);
  });

  it('loads G and D (no G_ema), with G as the image generator', () => {
    expect(fixture.G_ema).toBeUndefined();
    expect(fixture.G?.size).toBe([...fixtureShapes.keys()].filter((n) => n.startsWith('G.')).length);
    expect(fixture.D?.size).toBe([...fixtureShapes.keys()].filter((n) => n.startsWith('D.')).length);
    expect(generatorParams(fixture)).toBe(fixture.G);
  });

  it('converts tensors to tfjs layouts', async () => {
    const reader = await SafetensorsReader.open(MODEL);
    const raw = async (name: string) => (await reader.readFloat32(name)).data;
    try {
      // conv [O, I, kh, kw] -> [kh, kw, I, O]
      const conv = fixture.G!.get('synthesis.b8.conv0.weight')!;
      expect(conv.shape).toEqual([3, 3, 64, 64]);
      const [o, i, y, x] = [5, 7, 2, 1];
      expect(((await conv.data()) as Float32Array)[((y * 3 + x) * 64 + i) * 64 + o]).toBe(
        (await raw('G.synthesis.b8.conv0.weight'))[((o * 64 + i) * 3 + y) * 3 + x],
      );
      // FC [out, in] -> [in, out], on a non-square weight
      const fc = fixture.D!.get('b4.fc.weight')!;
      expect(fc.shape).toEqual([1024, 64]);
      expect(((await fc.data()) as Float32Array)[1000 * 64 + 10]).toBe(
        (await raw('D.b4.fc.weight'))[10 * 1024 + 1000],
      );
      // const [C, H, W] -> [H, W, C]
      const constant = fixture.G!.get('synthesis.b4.const')!;
      expect(constant.shape).toEqual([4, 4, 64]);
      expect(((await constant.data()) as Float32Array)[(1 * 4 + 2) * 64 + 9]).toBe(
        (await raw('G.synthesis.b4.const'))[(9 * 4 + 1) * 4 + 2],
      );
      // everything else keeps its shape and values
      const noise = fixture.G!.get('synthesis.b16.conv1.noise_const')!;
      expect(noise.shape).toEqual([16, 16]);
      expect([...((await noise.data()) as Float32Array)]).toEqual([
        ...(await raw('G.synthesis.b16.conv1.noise_const')),
      ]);
      expect(fixture.G!.get('synthesis.b8.conv0.noise_strength')!.shape).toEqual([]);
    } finally {
      await reader.close();
    }
  });

  it('knows the exact official tensor set of both networks', () => {
    const withPrefix = (prefix: string, shapes: Map<string, number[]>) =>
      new Map([...shapes].map(([n, s]) => [prefix + n, s]));
    expect(
      new Map([
        ...withPrefix('G.', generatorTorchShapes(fixture.config.G)),
        ...withPrefix('D.', discriminatorTorchShapes(fixture.config.D!)),
      ]),
    ).toEqual(fixtureShapes);
  });

  it('loads a generator-only file without a D config', async () => {
    const style = await loadCheckpoint(STYLE);
    try {
      expect(style.config).toEqual({ G: fixture.config.G });
      expect(style.D).toBeUndefined();
      expect(style.G?.size).toBe(fixture.G?.size);
    } finally {
      disposeCheckpoint(style);
    }
  });

  it('loads only the requested networks', async () => {
    const onlyD = await loadCheckpoint(MODEL, { networks: ['D'] });
    try {
      expect([onlyD.G_ema, onlyD.G, onlyD.D?.size]).toEqual([undefined, undefined, fixture.D?.size]);
      expect(onlyD.config).toEqual(fixture.config);
    } finally {
      disposeCheckpoint(onlyD);
    }
  });

  it('treats a bare generator state_dict as G_ema and reads non-inferable settings from metadata', async () => {
    const path = await rewriteFixture(
      'bare.safetensors',
      (n) => (n.startsWith('G.') ? n.slice(2) : undefined),
      {
        mbstd_group_size: '8',
        conv_clamp: 'none',
      },
    );
    const bare = await loadCheckpoint(path);
    try {
      expect(bare.G).toBeUndefined();
      expect(bare.G_ema?.size).toBe(fixture.G?.size);
      expect(bare.config.G.convClamp).toBeNull();
      expect(await bitsOf(bare.G_ema!.get('synthesis.b16.conv0.weight')!)).toEqual(
        await bitsOf(fixture.G!.get('synthesis.b16.conv0.weight')!),
      );
    } finally {
      disposeCheckpoint(bare);
    }
    const withD = await rewriteFixture(
      'bare-d.safetensors',
      (n) => n.replace(/^G\./, '').replace(/^D\./, ''),
      {
        mbstd_group_size: '8',
      },
    );
    expect((await readCheckpointInfo(withD)).config.D?.mbstdGroupSize).toBe(8);
  });
});

describe('saving', () => {
  it('round-trips the fixture bit-exactly in F32, with config and meta', async () => {
    const path = join(dir, 'roundtrip.safetensors');
    const meta = fixtureMeta({
      kind: 'finetune',
      parent: 'ffhq256',
      datasetId: 'ds-1',
      epoch: 3,
      kimg: 12.5,
      augmentP: 0.125,
      losses: { G: 1.5, D: 0.25 },
      extra: { note: 'x', nested: [1, 2] },
    });
    await saveCheckpoint(path, { config: fixture.config, meta, G: fixture.G, D: fixture.D });

    // Stored in PyTorch layout: the raw bytes equal the official file's, tensor by tensor.
    const original = await SafetensorsReader.open(MODEL);
    const saved = await SafetensorsReader.open(path);
    try {
      expect(saved.names().sort()).toEqual(original.names().sort());
      for (const name of original.names()) {
        expect(saved.entries.get(name)?.dtype).toBe('F32');
        expect(firstDifference(await saved.readBytes(name), await original.readBytes(name)), name).toBe(-1);
      }
    } finally {
      await original.close();
      await saved.close();
    }

    const info = await readCheckpointInfo(path);
    expect(info).toMatchObject({ format: 'facestyle', networks: ['G', 'D'], config: fixture.config, meta });
    const loaded = await loadCheckpoint(path);
    try {
      expect(loaded.meta).toEqual(meta);
      expect(loaded.config).toEqual(fixture.config);
      for (const network of ['G', 'D'] as const) {
        for (const [name, tensor] of fixture[network]!) {
          const back = loaded[network]!.get(name)!;
          expect(back.shape).toEqual(tensor.shape);
          expect(firstDifference(await bitsOf(back), await bitsOf(tensor)), name).toBe(-1);
        }
      }
    } finally {
      disposeCheckpoint(loaded);
    }
  });

  it('stores weights as F16/BF16 within their precision and keeps exact buffers and biases F32', async () => {
    for (const [dtype, relative] of [
      ['F16', 2 ** -11],
      ['BF16', 2 ** -8],
    ] as const) {
      const path = join(dir, `reduced-${dtype}.safetensors`);
      await saveCheckpoint(
        path,
        { config: fixture.config, meta: fixtureMeta(), G: fixture.G, D: fixture.D },
        { dtype },
      );
      const info = await readCheckpointInfo(path);
      const dtypeOf = (name: string) => info.tensors.find((t) => t.name === name)?.dtype;
      expect(dtypeOf('G.synthesis.b8.conv0.weight')).toBe(dtype);
      expect(dtypeOf('G.mapping.fc0.weight')).toBe(dtype);
      expect(dtypeOf('G.synthesis.b4.const')).toBe(dtype);
      for (const exact of [
        'G.mapping.w_avg',
        'G.synthesis.b8.conv0.noise_const',
        'G.synthesis.b8.conv0.resample_filter',
        'G.synthesis.b8.conv0.bias',
        'G.synthesis.b8.conv0.noise_strength',
      ]) {
        expect(dtypeOf(exact), exact).toBe('F32');
      }
      expect(info.fileBytes).toBeLessThan(0.6 * (await readFile(MODEL)).length);
      const loaded = await loadCheckpoint(path);
      try {
        for (const [name, tensor] of fixture.G!) {
          const want = (await tensor.data()) as Float32Array;
          const got = (await loaded.G!.get(name)!.data()) as Float32Array;
          const reduced = dtypeOf(`G.${name}`) !== 'F32';
          // Error beyond the storage type's precision (relative, plus the smallest F16 subnormal).
          let excess = 0;
          want.forEach((w, k) => {
            const allowed = reduced ? relative * Math.abs(w) + 2 ** -24 : 0;
            excess = Math.max(excess, Math.abs(got[k] - w) - allowed);
          });
          expect(excess, name).toBe(0);
        }
      } finally {
        disposeCheckpoint(loaded);
      }
    }
  });

  it('loads G_ema as the image generator when a file has both generators', async () => {
    const path = join(dir, 'both.safetensors');
    await saveCheckpoint(path, {
      config: { G: fixture.config.G },
      meta: fixtureMeta(),
      G_ema: fixture.G,
      G: fixture.G,
    });
    const image = await loadImageGenerator(path);
    try {
      expect([image.G_ema?.size, image.G, image.D]).toEqual([fixture.G?.size, undefined, undefined]);
      expect(generatorParams(image)).toBe(image.G_ema);
    } finally {
      disposeCheckpoint(image);
    }
    const fromStyle = await loadImageGenerator(STYLE);
    expect(fromStyle.G?.size).toBe(fixture.G?.size);
    disposeCheckpoint(fromStyle);
  });

  it('refuses parameter stores that do not match the config', async () => {
    const path = join(dir, 'bad-save.safetensors');
    const lacking = new Map(fixture.G);
    lacking.delete('synthesis.b16.torgb.bias');
    await expectCheckpointError(
      saveCheckpoint(path, { config: fixture.config, meta: fixtureMeta(), G: lacking }),
      /G lacks parameter\(s\) synthesis\.b16\.torgb\.bias/,
    );
    const wider = { ...fixture.config, G: { ...fixture.config.G, channelMax: 128 } };
    await expectCheckpointError(
      saveCheckpoint(path, { config: wider, meta: fixtureMeta(), G: fixture.G }),
      /parameter synthesis\.b4\.const has shape \[4, 4, 64\] but the config needs \[4, 4, 128\]/,
    );
    await expectCheckpointError(
      saveCheckpoint(path, {
        config: { G: fixture.config.G },
        meta: fixtureMeta(),
        G: fixture.G,
        D: fixture.D,
      }),
      /D given but config\.D is missing/,
    );
    await expectCheckpointError(
      saveCheckpoint(path, {
        config: fixture.config,
        meta: fixtureMeta({ kind: 'other' as 'base' }),
        G: fixture.G,
      }),
      /meta\.kind is missing or invalid/,
    );
    await expectCheckpointError(
      saveCheckpoint(path, { config: fixture.config, meta: fixtureMeta() }),
      /no generator/,
    );
    await expectCheckpointError(
      saveCheckpoint(join(dir, 'no-such-dir', 'x.safetensors'), {
        config: fixture.config,
        meta: fixtureMeta(),
        G: fixture.G,
      }),
      /cannot write checkpoint .*no-such-dir/,
    );
  });
});

describe('unreadable checkpoints', () => {
  it('reports a missing file, a directory, a truncated file, a .pt file and a corrupted header', async () => {
    const missing = join(dir, 'missing.safetensors');
    await expectCheckpointError(loadCheckpoint(missing), /checkpoint file not found/, new RegExp(missing));
    await expectCheckpointError(readCheckpointInfo(dir), /is a directory/);

    const bytes = await readFile(MODEL);
    const truncated = join(dir, 'truncated.safetensors');
    await writeFile(truncated, bytes.subarray(0, bytes.length - 1000));
    await expectCheckpointError(loadCheckpoint(truncated), /truncated/, new RegExp(truncated));

    const pt = join(dir, 'model.pt');
    await copyFile(join(FIXTURE_DIR, 'G_state_dict.pt'), pt);
    const err = await expectCheckpointError(loadCheckpoint(pt), /not a safetensors file/, /zip/);
    expect(err.hint).toBeTruthy();

    const corrupted = Buffer.from(bytes);
    corrupted[8] = 0x5b; // '{' -> '[': the header is no longer valid JSON
    const corruptedPath = join(dir, 'corrupted.safetensors');
    await writeFile(corruptedPath, corrupted);
    await expectCheckpointError(loadCheckpoint(corruptedPath), /not valid JSON/, new RegExp(corruptedPath));
  });

  it('names the missing or misshapen tensor', async () => {
    const lacking = await rewriteFixture('lacking.safetensors', (n) =>
      n === 'G.synthesis.b16.conv0.affine.bias' ? undefined : n,
    );
    await expectCheckpointError(
      loadCheckpoint(lacking),
      /missing tensor G\.synthesis\.b16\.conv0\.affine\.bias/,
    );

    const metadata = (config: ModelConfig, version = '1') => ({
      format: 'facestyle-checkpoint',
      version,
      config: JSON.stringify(config),
      meta: JSON.stringify(fixtureMeta()),
    });
    const wrongConfig = { ...fixture.config, D: { ...fixture.config.D!, mbstdChannels: 2 } };
    const misshapen = await rewriteFixture('misshapen.safetensors', (n) => n, metadata(wrongConfig));
    await expectCheckpointError(
      loadCheckpoint(misshapen),
      /tensor D\.b4\.conv\.weight has shape \[64, 65, 3, 3\] but the model needs \[64, 66, 3, 3\]/,
    );

    const future = await rewriteFixture('future.safetensors', (n) => n, metadata(fixture.config, '2'));
    await expectCheckpointError(readCheckpointInfo(future), /format version "2"/);

    const badJson = await rewriteFixture('bad-json.safetensors', (n) => n, {
      ...metadata(fixture.config),
      config: '{"G":',
    });
    await expectCheckpointError(readCheckpointInfo(badJson), /metadata "config" is not valid JSON/);

    // Same byte size, so only the checkpoint layer can object to it.
    const integer = await rewriteFixture('integer.safetensors', (n) => n);
    const patched = await readFile(integer);
    const header = patched.subarray(8, 8 + Number(patched.readBigUInt64LE(0))).toString('utf8');
    const withI32 = header.replace('"G.mapping.w_avg":{"dtype":"F32"', '"G.mapping.w_avg":{"dtype":"I32"');
    expect(withI32).not.toBe(header);
    patched.write(withI32, 8, 'utf8');
    await writeFile(integer, patched);
    await expectCheckpointError(loadCheckpoint(integer), /G\.mapping\.w_avg has dtype I32/);
  });
});

describe('inferConfig', () => {
  const prefixed = (config: ModelConfig, g = 'G_ema.', d = 'D.') =>
    new Map([
      ...[...generatorTorchShapes(config.G)].map(([n, s]) => [g + n, s] as [string, number[]]),
      ...[...discriminatorTorchShapes(config.D!)].map(([n, s]) => [d + n, s] as [string, number[]]),
    ]);

  it('recovers paper256 and a 1024px config, prefixed or bare', () => {
    const paper256 = paper256Config();
    expect(inferConfig(prefixed(paper256), { mbstdGroupSize: 8 })).toEqual(paper256);
    expect(inferConfig(prefixed(paper256, '', ''), { mbstdGroupSize: 8 })).toEqual(paper256);
    const big: ModelConfig = {
      G: defaultGeneratorConfig({ resolution: 1024, channelBase: 32768, mappingLayers: 8, convClamp: null }),
    };
    expect(
      inferConfig(new Map([...generatorTorchShapes(big.G)].map(([n, s]) => [`G.${n}`, s])), {
        convClamp: null,
      }),
    ).toEqual(big);
  });

  it('finds a (channel_base, channel_max) pair that reproduces every block', () => {
    const paper256 = new Map([
      [4, 512],
      [8, 512],
      [16, 512],
      [32, 512],
      [64, 256],
      [128, 128],
      [256, 64],
    ]);
    expect(inferChannelBaseMax(paper256)).toEqual({ channelBase: 16384, channelMax: 512 });
    const tiny = new Map([
      [4, 64],
      [8, 64],
      [16, 32],
      [32, 16],
    ]);
    expect(inferChannelBaseMax(tiny)).toEqual({ channelBase: 512, channelMax: 64 });
    // Not a power of two: base 600 gives 150, 75, 37, 18.
    const odd = new Map([
      [4, 150],
      [8, 75],
      [16, 37],
      [32, 18],
    ]);
    const fitted = inferChannelBaseMax(odd);
    for (const [res, channels] of odd) {
      expect(Math.min(Math.floor(fitted.channelBase / res), fitted.channelMax)).toBe(channels);
    }
    expect(() =>
      inferChannelBaseMax(
        new Map([
          [4, 64],
          [8, 16],
          [16, 32],
        ]),
      ),
    ).toThrow(CheckpointError);
  });

  it('rejects StyleGAN3, conditional and rosinality checkpoints', () => {
    const sg3 = new Map([
      ['G_ema.mapping.fc0.weight', [512, 512]],
      ['G_ema.synthesis.input.affine.weight', [4, 512]],
      ['G_ema.synthesis.L0_36_512.weight', [512, 512, 3, 3]],
    ]);
    expect(() => inferConfig(sg3)).toThrow(/StyleGAN3 .*not supported/);
    const conditional = new Map(fixtureShapes).set('G.mapping.embed.weight', [32, 10]);
    expect(() => inferConfig(conditional)).toThrow(/conditional models \(c_dim>0\) are not supported/);
    const rosinality = new Map([
      ['g_ema.style.1.weight', [512, 512]],
      ['g_ema.convs.0.conv.weight', [1, 512, 512, 3, 3]],
    ]);
    expect(() => inferConfig(rosinality)).toThrow(/rosinality/);
  });

  it('names missing, extra and misshapen tensors', () => {
    const without = (name: string) => {
      const shapes = new Map(fixtureShapes);
      shapes.delete(name);
      return shapes;
    };
    expect(() => inferConfig(without('G.synthesis.b16.torgb.bias'))).toThrow(
      /missing tensor G\.synthesis\.b16\.torgb\.bias/,
    );
    expect(() => inferConfig(without('G.mapping.fc0.weight'))).toThrow(
      /missing tensor G\.mapping\.fc0\.weight/,
    );
    expect(() => inferConfig(without('D.b4.conv.weight'))).toThrow(/missing tensor D\.b4\.conv\.weight/);
    const extra = new Map(fixtureShapes).set('G.synthesis.b8.skip.weight', [64, 64, 1, 1]);
    expect(() => inferConfig(extra)).toThrow(/unexpected tensor G\.synthesis\.b8\.skip\.weight/);
    const misshapen = new Map(fixtureShapes).set('G.synthesis.b8.conv1.affine.weight', [64, 31]);
    expect(() => inferConfig(misshapen)).toThrow(
      /tensor G\.synthesis\.b8\.conv1\.affine\.weight has shape \[64, 31\] but the model needs \[64, 32\]/,
    );
    const unknown = new Map(fixtureShapes).set('augment_pipe.p', []);
    expect(() => inferConfig(unknown)).toThrow(/unexpected tensor augment_pipe\.p/);
  });

  it('rejects non-power-of-two blocks, a lone discriminator and a mismatched discriminator', () => {
    const odd = new Map(fixtureShapes).set('G.synthesis.b24.conv1.weight', [16, 16, 3, 3]);
    expect(() => inferConfig(odd)).toThrow(/block resolution 24 .* is not a power of two/);
    const onlyD = new Map([...fixtureShapes].filter(([n]) => n.startsWith('D.')));
    expect(() => inferConfig(onlyD)).toThrow(/no generator tensors/);
    const small = inferConfig(new Map([...fixtureShapes].filter(([n]) => n.startsWith('G.'))));
    const smallD = discriminatorTorchShapes({ ...fixture.config.D!, resolution: 16 });
    const mismatched = new Map([
      ...[...generatorTorchShapes(small.G)].map(([n, s]) => [`G.${n}`, s] as [string, number[]]),
      ...[...smallD].map(([n, s]) => [`D.${n}`, s] as [string, number[]]),
    ]);
    expect(() => inferConfig(mismatched)).toThrow(
      /discriminator \(16px.*does not match the generator \(32px/,
    );
  });
});
