// Layer swapping beyond the fixture parity (test/parity): soft switching, directions, refusals,
// speed and zero-copy, the saved blend checkpoint, and grids under Discord's upload limit.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hstack } from '../src/images/compose.ts';
import { encodeUnderLimit } from '../src/images/encode.ts';
import { renderGrid } from '../src/images/grid.ts';
import { initBackend } from '../src/model/backend.ts';
import {
  generatorParams,
  loadImageGenerator,
  readCheckpointInfo,
  saveCheckpoint,
} from '../src/model/checkpoint/io.ts';
import { defaultGeneratorConfig } from '../src/model/config.ts';
import { Generator } from '../src/model/networks/generator.ts';
import type { ParamStore } from '../src/model/params.ts';
import { tf } from '../src/model/tf.ts';
import {
  BlendError,
  blend,
  blendCheckpoints,
  blockResolution,
  highWeight,
  orderForDirection,
} from '../src/pipelines/blend.ts';
import { blendMatrix } from '../src/pipelines/showcase.ts';
import { loadParityFixture, maxAbsDiff, type ParityFixture } from './support/fixture.ts';

let fx: ParityFixture;
let dir: string;

beforeAll(async () => {
  await initBackend('wasm');
  fx = await loadParityFixture();
  dir = await mkdtemp(join(tmpdir(), 'facestyle-blend-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ws = () => tf.tensor3d(fx.refs.get('ws')!.data, fx.refs.get('ws')!.shape as [number, number, number]);
const render = (params: ParamStore) => new Generator(fx.config.G, params).synthesize(ws());

describe('hard layer swap', () => {
  it('borrows every tensor from its parents: nothing is copied', () => {
    const { params, owned } = blend(fx.G, fx.styleG, { layer: 16 });
    expect(owned).toHaveLength(0);
    for (const [name, t] of params) {
      const res = blockResolution(name);
      const source = res !== null && res >= 16 ? fx.styleG : fx.G;
      expect(t, name).toBe(source.get(name));
    }
  });

  it('takes the mapping network and w_avg from the high model when asked', () => {
    const { params } = blend(fx.G, fx.styleG, { layer: 16, mapping: 'high' });
    expect(params.get('mapping.fc0.weight')).toBe(fx.styleG.get('mapping.fc0.weight'));
    expect(params.get('mapping.w_avg')).toBe(fx.styleG.get('mapping.w_avg'));
  });

  it('blends a 256x256 paper256-size generator by selection alone (speed: npm run bench -- blend)', () => {
    const cfg = defaultGeneratorConfig({ resolution: 256 });
    // Shapes matter, values do not: zeros keep the set-up fast.
    const specs = Generator.specs(cfg);
    const a: ParamStore = new Map(specs.map((s) => [s.name, tf.zeros(s.shape)]));
    const b: ParamStore = new Map(specs.map((s) => [s.name, tf.zeros(s.shape)]));
    const { params, owned } = blend(a, b, { layer: 64 });
    expect(owned).toHaveLength(0);
    expect(params.size).toBe(a.size);
    for (const [name, t] of params) expect(t === a.get(name) || t === b.get(name)).toBe(true);
    tf.dispose([...a.values(), ...b.values()]);
  });
});

describe('soft switch', () => {
  it('puts the switch halfway between block S/2 and block S: the two mirror each other around 50/50', () => {
    for (const width of [0.25, 0.5, 1, 2]) {
      expect(highWeight(32, 32, width) + highWeight(16, 32, width)).toBeCloseTo(1, 12);
      expect(highWeight(32, 32, width)).toBeGreaterThan(0.5);
      expect(highWeight(16, 32, width)).toBeLessThan(0.5);
      // Monotone in resolution.
      expect(highWeight(64, 32, width)).toBeGreaterThan(highWeight(32, 32, width));
    }
  });

  it('a blend at width 1 interpolates each block with its weight', async () => {
    const { params, owned } = blend(fx.G, fx.styleG, { layer: 16, width: 1 });
    expect(owned.length).toBeGreaterThan(0);
    const name = 'synthesis.b16.conv1.weight';
    const y = highWeight(16, 16, 1);
    const expected = tf.add(tf.mul(fx.styleG.get(name)!, y), tf.mul(fx.G.get(name)!, 1 - y));
    expect(await maxAbsDiff(params.get(name)!, expected)).toBeLessThan(1e-6);
    expect(params.get('mapping.fc0.weight')).toBe(fx.G.get('mapping.fc0.weight'));
    tf.dispose(owned);
  });

  it('width -> 0 gives back the hard cut', async () => {
    for (const layer of [8, 16, 32]) {
      const hard = render(blend(fx.G, fx.styleG, { layer }).params);
      const soft = blend(fx.G, fx.styleG, { layer, width: 0.01 });
      expect(await maxAbsDiff(render(soft.params), hard), `layer ${layer}`).toBeLessThan(1e-5);
      tf.dispose(soft.owned);
    }
  });

  it('rejects a negative or non-numeric width', () => {
    expect(() => blend(fx.G, fx.styleG, { layer: 16, width: -1 })).toThrow(BlendError);
    expect(() => blend(fx.G, fx.styleG, { layer: 16, width: Number.NaN })).toThrow(/non-negative/);
  });
});

describe('directions', () => {
  it('texture keeps the base coarse layers; structure keeps the style coarse layers', async () => {
    const texture = orderForDirection(fx.G, fx.styleG, 'texture');
    const structure = orderForDirection(fx.G, fx.styleG, 'structure');
    expect(texture.low).toBe(fx.G);
    expect(structure.low).toBe(fx.styleG);
    const t = blend(texture.low, texture.high, { layer: 16 }).params;
    const s = blend(structure.low, structure.high, { layer: 16 }).params;
    expect(t.get('synthesis.b8.conv1.weight')).toBe(fx.G.get('synthesis.b8.conv1.weight'));
    expect(t.get('synthesis.b32.conv1.weight')).toBe(fx.styleG.get('synthesis.b32.conv1.weight'));
    expect(s.get('synthesis.b8.conv1.weight')).toBe(fx.styleG.get('synthesis.b8.conv1.weight'));
    expect(s.get('synthesis.b32.conv1.weight')).toBe(fx.G.get('synthesis.b32.conv1.weight'));
    // The two directions are different functions, both different from either parent.
    const [ti, si] = [render(t), render(s)];
    expect(await maxAbsDiff(ti, si)).toBeGreaterThan(1e-2);
    expect(await maxAbsDiff(ti, render(fx.G))).toBeGreaterThan(1e-2);
    expect(await maxAbsDiff(si, render(fx.styleG))).toBeGreaterThan(1e-2);
  });
});

describe('refusals', () => {
  it('refuses models of different architectures, naming the tensor', () => {
    const other = new Map(fx.styleG);
    other.set('synthesis.b16.conv1.weight', tf.zeros([3, 3, 32, 16]));
    expect(() => blend(fx.G, other, { layer: 16 })).toThrow(
      /synthesis\.b16\.conv1\.weight has shape \[3,3,32,32\] in the low model but \[3,3,32,16\]/,
    );
    const missing = new Map(fx.styleG);
    missing.delete('synthesis.b32.torgb.bias');
    expect(() => blend(fx.G, missing, { layer: 16 })).toThrow(
      /synthesis\.b32\.torgb\.bias exists in the low model but not in the high model/,
    );
  });

  it('refuses swap layers that are not powers of two or above the resolution', () => {
    expect(() => blend(fx.G, fx.styleG, { layer: 24 })).toThrow(/power of two/);
    expect(() => blend(fx.G, fx.styleG, { layer: 64 })).toThrow(/above the model resolution 32/);
  });
});

describe('blend checkpoints', () => {
  it('saves a self-describing checkpoint that generates the blend', async () => {
    const src = (params: ParamStore, name: string, path: string) => ({
      path,
      config: fx.config,
      meta: { name, kind: 'base' as const, createdAt: new Date().toISOString() },
      params,
    });
    const { checkpoint, owned } = blendCheckpoints(
      src(fx.G, 'faces', 'base.safetensors'),
      src(fx.styleG, 'anime', 'anime-e160.safetensors'),
      {
        layer: 16,
        direction: 'texture',
      },
    );
    expect(owned).toHaveLength(0);
    const path = join(dir, 'blend.safetensors');
    await saveCheckpoint(path, checkpoint);
    const info = await readCheckpointInfo(path);
    expect(info.meta.kind).toBe('blend');
    expect(info.meta.parents).toEqual(['base.safetensors', 'anime-e160.safetensors']);
    expect(info.meta.extra).toMatchObject({ layer: 16, width: 0, direction: 'texture', mapping: 'base' });
    const loaded = await loadImageGenerator(path);
    const fromFile = new Generator(loaded.config.G, generatorParams(loaded)).synthesize(ws());
    const refImg = tf.transpose(
      tf.tensor4d(
        fx.refs.get('img_blend16')!.data,
        fx.refs.get('img_blend16')!.shape as [number, number, number, number],
      ),
      [0, 2, 3, 1],
    );
    expect(await maxAbsDiff(fromFile, refImg)).toBeLessThan(1e-3);
  });
});

describe('grids', () => {
  it('a blend matrix is labelled and its encoding stays under the 10 MiB limit', async () => {
    const result = await blendMatrix(
      fx.config.G,
      fx.G,
      [
        { label: 'epoch 24', params: fx.styleG },
        { label: 'epoch 48', params: fx.styleG },
      ],
      [8, 16, 32],
      { seeds: [0, 1] },
    );
    expect(result.columnLabels).toEqual(['base', 'style', 'swap ≥8', 'swap ≥16', 'swap ≥32']);
    expect(result.rows).toHaveLength(2);
    expect(result.rows[0]).toHaveLength(5);
    const rows = await Promise.all(
      result.rows.map((row) => Promise.all(row.map((cell) => hstack(cell, 64)))),
    );
    const image = await renderGrid({ rows, rowLabels: result.rowLabels, columnLabels: result.columnLabels });
    const limit = 10 * 1024 * 1024;
    const encoded = await encodeUnderLimit(image, { maxBytes: limit });
    expect(encoded.buffer.length).toBeLessThanOrEqual(limit);
    // A small limit forces the fallback path and is still honoured.
    const tight = await encodeUnderLimit(image, { maxBytes: 20_000 });
    expect(tight.buffer.length).toBeLessThanOrEqual(20_000);
  });
});
