// The ONNX engine against the official networks: the fixture's mapping (psi 1 and 0.7) and
// synthesis (const noise, no noise, truncation, style generator, every layer swap) within 1e-4,
// and the same faces as the tfjs generator for seeds. FACESTYLE_PARITY_FIXTURE=<dir> checks
// another fixture folder.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { Generator } from '../../src/model/networks/generator.ts';
import { OnnxGenerator } from '../../src/model/onnx/session.ts';
import { seedsToZ } from '../../src/model/sampling.ts';
import { tf } from '../../src/model/tf.ts';
import { blend } from '../../src/pipelines/blend.ts';
import { loadParityFixture, type ParityFixture } from '../support/fixture.ts';

const ABS_TOL = 1e-4;

function maxAbs(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('StyleGAN2 parity with the official networks on ONNX Runtime (CPU)', () => {
  let fx: ParityFixture;
  let G: OnnxGenerator;
  const ref = (name: string) => {
    const r = fx.refs.get(name);
    if (!r) throw new Error(`fixture has no ref ${name}`);
    return r;
  };
  let n: number;

  beforeAll(async () => {
    await initBackend('cpu');
    fx = await loadParityFixture();
    G = await OnnxGenerator.create(fx.config.G, fx.G);
    n = ref('z').shape[0];
  });

  afterAll(async () => {
    await G?.release();
    tf.disposeVariables();
  });

  it('maps z to ws (psi 1 and 0.7)', async () => {
    expect(maxAbs(await G.map(ref('z').data, n, 1), ref('ws').data)).toBeLessThan(ABS_TOL);
    expect(maxAbs(await G.map(ref('z').data, n, 0.7), ref('ws_psi07').data)).toBeLessThan(ABS_TOL);
  });

  it('synthesises images with const noise, truncation and no noise', async () => {
    expect(maxAbs(await G.synthesize(ref('ws').data, n, 'const'), ref('img').data)).toBeLessThan(ABS_TOL);
    expect(maxAbs(await G.generate(ref('z').data, n, 0.7), ref('img_psi07').data)).toBeLessThan(ABS_TOL);
    expect(maxAbs(await G.synthesize(ref('ws').data, n, 'none'), ref('img_nonoise').data)).toBeLessThan(
      ABS_TOL,
    );
    expect(maxAbs(await G.synthesize(ref('ws_mix').data, n), ref('img_mix').data)).toBeLessThan(ABS_TOL);
  });

  it('takes per-layer noise as inputs in random mode: zero noise is no noise, other noise changes the image', async () => {
    const ws = ref('ws').data;
    const zeros = await G.synthesize(ws, n, 'random', (count) => new Float32Array(count));
    expect(maxAbs(zeros, ref('img_nonoise').data)).toBeLessThan(ABS_TOL);
    let calls = 0;
    const noisy = await G.synthesize(ws, n, 'random', (count) => {
      calls++;
      return new Float32Array(count).fill(1);
    });
    // One input per synthesis conv: conv1 at 4x4, then conv0 + conv1 per higher resolution.
    expect(calls).toBe(2 * Math.log2(fx.config.G.resolution) - 3);
    expect(maxAbs(noisy, ref('img_nonoise').data)).toBeGreaterThan(1e-3);
  });

  it('runs any batch size through one session (dynamic batch axis)', async () => {
    const [, numW, wDim] = ref('ws').shape;
    const one = await G.synthesize(ref('ws').data.subarray(3 * numW * wDim, 4 * numW * wDim), 1);
    const image = one.length;
    expect(maxAbs(one, ref('img').data.subarray(3 * image, 4 * image))).toBeLessThan(ABS_TOL);
  });

  it('renders the style generator and every layer swap the fixture lists', async () => {
    const styleG = await OnnxGenerator.create(fx.config.G, fx.styleG);
    try {
      expect(maxAbs(await styleG.synthesize(ref('ws').data, n), ref('img_g2').data)).toBeLessThan(ABS_TOL);
    } finally {
      await styleG.release();
    }
    const swaps = fx.meta.swaps ?? [];
    expect(swaps.length).toBeGreaterThan(0);
    for (const layer of swaps) {
      const blended = await OnnxGenerator.create(fx.config.G, blend(fx.G, fx.styleG, { layer }).params);
      try {
        const err = maxAbs(await blended.synthesize(ref('ws').data, n), ref(`img_blend${layer}`).data);
        expect(err, `img_blend${layer}`).toBeLessThan(ABS_TOL);
      } finally {
        await blended.release();
      }
    }
  });

  it('runs on the WebGPU execution provider too (where a Vulkan/Metal/D3D12 adapter exists)', async (ctx) => {
    let gpu: OnnxGenerator;
    try {
      gpu = await OnnxGenerator.create(fx.config.G, fx.G, { provider: 'webgpu' });
    } catch (err) {
      if (process.env.CI_REQUIRE_WEBGPU) throw err;
      ctx.skip(`no WebGPU adapter for ONNX Runtime: ${(err as Error).message}`);
      return;
    }
    try {
      expect(maxAbs(await gpu.generate(ref('z').data, n, 0.7), ref('img_psi07').data)).toBeLessThan(ABS_TOL);
    } finally {
      await gpu.release();
    }
  });

  it('gives the same faces as the tfjs generator for seeds (psi 0.7)', async () => {
    const seeds = [0, 1, 2, 3];
    const tfG = new Generator(fx.config.G, fx.G);
    const z = seedsToZ(seeds, fx.config.G.zDim);
    const nchw = tf.tidy(() => tf.transpose(tfG.generate(z, { psi: 0.7, noiseMode: 'const' }), [0, 3, 1, 2]));
    const expected = (await nchw.data()) as Float32Array;
    const got = await G.generate((await z.data()) as Float32Array, seeds.length, 0.7);
    tf.dispose([z, nchw]);
    expect(maxAbs(got, expected)).toBeLessThan(ABS_TOL);
  });
});
