// Engine choice and the worker's ONNX sessions: FACESTYLE_ENGINE, auto per backend, hostile
// architectures refused by name, the tfjs fallback when no session can be built, and the worker's
// ONNX images equal to its tfjs images for the same seeds.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { tensorToRgb } from '../../src/images/tensor-image.ts';
import { WorkerModels } from '../../src/jobs/handlers/models.ts';
import { initBackend } from '../../src/model/backend.ts';
import { defaultGeneratorConfig, type GeneratorConfig } from '../../src/model/config.ts';
import { initParams } from '../../src/model/init.ts';
import { Generator } from '../../src/model/networks/generator.ts';
import { buildGeneratorModel, OnnxExportError } from '../../src/model/onnx/generator-graph.ts';
import { OnnxGenerator, readWeights } from '../../src/model/onnx/session.ts';
import { generateFromSeeds } from '../../src/model/sampling.ts';
import { tf } from '../../src/model/tf.ts';
import {
  chooseEngine,
  createOnnxOrFallback,
  onnxImagesFromSeeds,
  parseEngineSetting,
} from '../../src/pipelines/engine.ts';
import { loadParityFixture, type ParityFixture } from '../support/fixture.ts';

const DEMO = fileURLToPath(new URL('../../checkpoints/demo-faces.safetensors', import.meta.url));

describe('engine choice', () => {
  it('takes onnx where tfjs would run on wasm or cpu, unless FACESTYLE_ENGINE says otherwise', () => {
    expect(chooseEngine('auto', 'wasm')).toBe('onnx');
    expect(chooseEngine('auto', 'cpu')).toBe('onnx');
    expect(chooseEngine('auto', 'webgpu')).toBe('tfjs');
    expect(chooseEngine('auto', 'tensorflow')).toBe('tfjs');
    expect(chooseEngine('tfjs', 'wasm')).toBe('tfjs');
    expect(chooseEngine('onnx', 'webgpu')).toBe('onnx');
    expect(parseEngineSetting('onnx')).toBe('onnx');
    expect(() => parseEngineSetting('gpu')).toThrow(/FACESTYLE_ENGINE must be auto, tfjs, onnx, got "gpu"/);
  });
});

describe('hostile generators', () => {
  let fx: ParityFixture;
  beforeAll(async () => {
    await initBackend('cpu');
    fx = await loadParityFixture();
  });

  it('names an unknown architecture option instead of building a wrong graph', async () => {
    const weights = await readWeights(fx.G);
    const cfg = { ...fx.config.G, architecture: 'resnet' } as GeneratorConfig;
    expect(() => buildGeneratorModel(cfg, weights)).toThrow(OnnxExportError);
    expect(() => buildGeneratorModel(cfg, weights)).toThrow(/unknown config field\(s\) architecture/);
  });

  it('names tensors the graph does not implement (a conditional generator) and shapes that disagree', async () => {
    const weights = await readWeights(fx.G);
    weights.set('mapping.embed.weight', { shape: [10, 32], data: new Float32Array(320) });
    expect(() => buildGeneratorModel(fx.config.G, weights)).toThrow(
      /unexpected tensor\(s\) mapping\.embed\.weight/,
    );
    weights.delete('mapping.embed.weight');
    const w = weights.get('synthesis.b8.conv1.weight')!;
    weights.set('synthesis.b8.conv1.weight', { shape: [1, 1, w.shape[2], w.shape[3]], data: w.data });
    expect(() => buildGeneratorModel(fx.config.G, weights)).toThrow(/synthesis\.b8\.conv1\.weight has shape/);
  });

  it('falls back (null, with a log line) when no session can be built', async () => {
    const params = new Map(fx.G);
    params.delete('synthesis.b16.torgb.bias');
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await createOnnxOrFallback(fx.config.G, params, 'broken.safetensors')).toBeNull();
      const lines = stderr.mock.calls.map((c) => String(c[0])).join('');
      expect(lines).toMatch(/engine onnx unavailable for broken\.safetensors, falling back to tfjs/);
      expect(lines).toMatch(/missing tensor\(s\) synthesis\.b16\.torgb\.bias/);
    } finally {
      stderr.mockRestore();
    }
  });
});

describe('architectures the checkpoint format allows', () => {
  it('matches tfjs for grayscale, no clamp, z_dim != w_dim, 3 mapping layers, narrow channels', async () => {
    await initBackend('cpu');
    const cfg = defaultGeneratorConfig({
      resolution: 16,
      zDim: 24,
      wDim: 40,
      mappingLayers: 3,
      channelBase: 256,
      channelMax: 48,
      convClamp: null,
      imgChannels: 1,
    });
    const params = initParams(Generator.specs(cfg), 3);
    // Random biases, noise strengths and w_avg, so that every path contributes.
    for (const [name, t] of params) {
      if (/(bias|noise_strength|w_avg)$/.test(name)) {
        params.set(name, tf.randomNormal(t.shape, 0, 0.5, 'float32', name.length));
        t.dispose();
      }
    }
    const G = await OnnxGenerator.create(cfg, params);
    try {
      const n = 3;
      const z = tf.randomNormal([n, cfg.zDim], 0, 1, 'float32', 5) as tf.Tensor2D;
      const expected = tf.tidy(() =>
        tf.transpose(new Generator(cfg, params).generate(z, { psi: 0.6, noiseMode: 'const' }), [0, 3, 1, 2]),
      );
      const got = await G.generate((await z.data()) as Float32Array, n, 0.6);
      const want = (await expected.data()) as Float32Array;
      expect(got.length).toBe(n * 16 * 16);
      let maxDiff = 0;
      for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
      expect(maxDiff).toBeLessThan(1e-4);
      tf.dispose([z, expected]);
    } finally {
      await G.release();
      for (const t of params.values()) t.dispose();
    }
  });
});

describe('worker models on the ONNX engine', () => {
  let dataDir: string;
  const saved = process.env.FACESTYLE_ENGINE;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'facestyle-engine-'));
  });
  afterEach(() => {
    vi.restoreAllMocks();
    if (saved === undefined) delete process.env.FACESTYLE_ENGINE;
    else process.env.FACESTYLE_ENGINE = saved;
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('loads a session per model and makes the faces tfjs makes', async () => {
    process.env.FACESTYLE_ENGINE = 'onnx';
    const models = new WorkerModels(dataDir, 1);
    await models.withScope(async (scope) => {
      expect(await models.engine()).toBe('onnx');
      const { G, onnx } = await scope.generator(DEMO);
      expect(onnx).not.toBeNull();
      const seeds = [0, 7, 42];
      const fromOnnx = await onnxImagesFromSeeds(onnx!, seeds, { psi: 0.7, batchSize: 2 });
      const fromTfjs: Awaited<ReturnType<typeof tensorToRgb>> = [];
      await generateFromSeeds(
        G,
        seeds,
        async (images) => void fromTfjs.push(...(await tensorToRgb(images))),
        {
          psi: 0.7,
        },
      );
      expect(fromOnnx.length).toBe(3);
      for (const [i, image] of fromOnnx.entries()) {
        expect([image.width, image.height]).toEqual([fromTfjs[i].width, fromTfjs[i].height]);
        let maxDiff = 0;
        for (let p = 0; p < image.data.length; p++)
          maxDiff = Math.max(maxDiff, Math.abs(image.data[p] - fromTfjs[i].data[p]));
        expect(maxDiff, `seed ${seeds[i]}`).toBeLessThanOrEqual(1);
      }
    });
    await models.clear();
  });

  it('goes on with tfjs when the session cannot be created', async () => {
    process.env.FACESTYLE_ENGINE = 'onnx';
    vi.spyOn(OnnxGenerator, 'create').mockRejectedValue(new Error('no CPU provider'));
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const models = new WorkerModels(dataDir, 1);
    await models.withScope(async (scope) => {
      const { G, onnx } = await scope.generator(DEMO);
      expect(onnx).toBeNull();
      expect(G.cfg.resolution).toBeGreaterThan(0);
      expect(scope.renderer().name).toBe('renderWithTfjs');
    });
    expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toMatch(
      /falling back to tfjs.*no CPU provider/,
    );
    await models.clear();
  });

  it('keeps tfjs when FACESTYLE_ENGINE=tfjs', async () => {
    process.env.FACESTYLE_ENGINE = 'tfjs';
    const models = new WorkerModels(dataDir, 1);
    await models.withScope(async (scope) => {
      expect((await scope.generator(DEMO)).onnx).toBeNull();
    });
    await models.clear();
  });
});
