// The parity suite: every tensor in a fixture's refs reproduced within the tolerances of the
// fixture README (max abs error < 1e-3 on ws/images/logits, relative error < 1e-3 on R1), on one
// backend. Any fixture folder in the same format is checked with FACESTYLE_PARITY_FIXTURE=<dir>.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, type BackendName, initBackend } from '../../src/model/backend.ts';
import { Discriminator } from '../../src/model/networks/discriminator.ts';
import { Generator, mixStyles } from '../../src/model/networks/generator.ts';
import { tf } from '../../src/model/tf.ts';
import { blend } from '../../src/pipelines/blend.ts';
import { loadParityFixture, maxAbsDiff, nchwToNhwc, type ParityFixture } from '../support/fixture.ts';

const ABS_TOL = 1e-3;
const R1_REL_TOL = 1e-3;

/**
 * Starts the backend; a machine without one (no Vulkan driver for webgpu) skips the suite with the
 * reason, except where CI_REQUIRE_WEBGPU is set (CI installs lavapipe: there a missing driver fails).
 */
export async function backendAvailable(backend: BackendName): Promise<boolean> {
  try {
    await initBackend(backend);
    return true;
  } catch (err) {
    if (process.env.CI_REQUIRE_WEBGPU || !(err instanceof BackendError)) throw err;
    console.warn(`skipped: no ${backend} backend on this machine: ${err.message}`);
    return false;
  }
}

export async function describeParity(backend: BackendName): Promise<void> {
  const available = await backendAvailable(backend);
  describe.skipIf(!available)(`StyleGAN2 parity with the official networks on ${backend}`, () => {
    let fx: ParityFixture;
    let G: Generator;
    let D: Discriminator;
    const ref = (name: string) => {
      const r = fx.refs.get(name);
      if (!r) throw new Error(`fixture has no ref ${name}`);
      return tf.tensor(r.data, r.shape);
    };
    const refImage = (name: string) => nchwToNhwc(fx.refs.get(name)!);

    beforeAll(async () => {
      await initBackend(backend);
      expect(tf.getBackend()).toBe(backend);
      fx = await loadParityFixture();
      G = new Generator(fx.config.G, fx.G);
      D = new Discriminator(fx.config.D!, fx.D);
    });

    afterAll(() => {
      tf.disposeVariables();
    });

    it('maps z to ws (psi 1 and 0.7)', async () => {
      const z = ref('z') as tf.Tensor2D;
      expect(await maxAbsDiff(G.map(z), ref('ws'))).toBeLessThan(ABS_TOL);
      expect(await maxAbsDiff(G.map(z, { psi: 0.7 }), ref('ws_psi07'))).toBeLessThan(ABS_TOL);
    });

    it('synthesises images with const noise, truncation and no noise', async () => {
      expect(
        await maxAbsDiff(G.synthesize(ref('ws') as tf.Tensor3D, { noiseMode: 'const' }), refImage('img')),
      ).toBeLessThan(ABS_TOL);
      expect(
        await maxAbsDiff(
          G.synthesize(ref('ws_psi07') as tf.Tensor3D, { noiseMode: 'const' }),
          refImage('img_psi07'),
        ),
      ).toBeLessThan(ABS_TOL);
      expect(
        await maxAbsDiff(
          G.synthesize(ref('ws') as tf.Tensor3D, { noiseMode: 'none' }),
          refImage('img_nonoise'),
        ),
      ).toBeLessThan(ABS_TOL);
    });

    it('mixes styles from layer num_ws/2 on with the previous sample', async () => {
      const ws = ref('ws') as tf.Tensor3D;
      const rolled = tf.concat(
        [tf.slice(ws, [ws.shape[0] - 1], [1]), tf.slice(ws, [0], [ws.shape[0] - 1])],
        0,
      ) as tf.Tensor3D;
      const mixed = mixStyles(ws, rolled, G.numWs / 2);
      expect(await maxAbsDiff(mixed, ref('ws_mix'))).toBeLessThan(ABS_TOL);
      expect(await maxAbsDiff(G.synthesize(mixed, { noiseMode: 'const' }), refImage('img_mix'))).toBeLessThan(
        ABS_TOL,
      );
    });

    it('discriminates fake and real images (minibatch-std groups as the official reshape)', async () => {
      expect(await maxAbsDiff(D.forward(refImage('img')), ref('d_logits_fake'))).toBeLessThan(ABS_TOL);
      expect(await maxAbsDiff(D.forward(refImage('real')), ref('d_logits_real'))).toBeLessThan(ABS_TOL);
    });

    it('computes the R1 penalty per image', async () => {
      const real = refImage('real');
      const grad = tf.grad((x: tf.Tensor) => tf.sum(D.forward(x as tf.Tensor4D)))(real);
      const r1 = await tf.sum(tf.square(grad), [1, 2, 3]).data();
      const expected = fx.refs.get('r1_per_image')!.data;
      for (let i = 0; i < expected.length; i++) {
        expect(Math.abs(r1[i] - expected[i]) / Math.abs(expected[i])).toBeLessThan(R1_REL_TOL);
      }
    });

    it('renders the style generator from the base ws', async () => {
      const styleG = new Generator(fx.config.G, fx.styleG);
      expect(await maxAbsDiff(styleG.synthesize(ref('ws') as tf.Tensor3D), refImage('img_g2'))).toBeLessThan(
        ABS_TOL,
      );
    });

    it('reproduces every layer swap the fixture lists', async () => {
      const swaps = fx.meta.swaps ?? [];
      expect(swaps.length).toBeGreaterThan(0);
      for (const layer of swaps) {
        const { params } = blend(fx.G, fx.styleG, { layer });
        const blended = new Generator(fx.config.G, params);
        const err = await maxAbsDiff(
          blended.synthesize(ref('ws') as tf.Tensor3D),
          refImage(`img_blend${layer}`),
        );
        expect(err, `img_blend${layer}`).toBeLessThan(ABS_TOL);
      }
    });
  });
}
