// Second-order training paths through the real networks: R1 against the parity fixture's
// r1_per_image (official stylegan2-ada-pytorch weights and outputs), and the gradients of R1 and of
// the path-length penalty in every network weight against tfjs's native convolutions on cpu, on cpu,
// wasm and webgpu. The weight gradients use small freshly initialised networks: the cpu backend needs
// tens of seconds for them at the fixture's size.
import { beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { BackendError, initBackend } from '../../src/model/backend.ts';
import { defaultDiscriminatorConfig, defaultGeneratorConfig } from '../../src/model/config.ts';
import { initParams } from '../../src/model/init.ts';
import { Discriminator } from '../../src/model/networks/discriminator.ts';
import { Generator } from '../../src/model/networks/generator.ts';
import type { ConvOps } from '../../src/model/ops/conv.ts';
import { installSecondOrderGradients } from '../../src/model/ops/grad/activations.ts';
import { trainingConvOps } from '../../src/model/ops/grad/install.ts';
import type { ParamStore } from '../../src/model/params.ts';
import { tf } from '../../src/model/tf.ts';
import { pathLengthPenalty, r1Penalty } from '../../src/model/train/loss.ts';
import { loadParityFixture, nchwToNhwc, type ParityFixture } from '../support/fixture.ts';
import { type HostTensor, onCpu, relativeError, TRAIN_BACKENDS, toHost } from './support.ts';

const R1_REL_TOL = 1e-3;

function variables(params: ParamStore): Map<string, tf.Variable> {
  return new Map([...params].map(([name, t]) => [name, tf.variable(t, true)]));
}

async function hostGrads(grads: tf.NamedTensorMap, params: Map<string, tf.Variable>) {
  const byParam = new Map<string, HostTensor>();
  for (const [name, v] of params) if (grads[v.name]) byParam.set(name, await toHost(grads[v.name]));
  return byParam;
}

const SMALL = { resolution: 16, channelBase: 128, channelMax: 16 };
const SMALL_D = defaultDiscriminatorConfig(SMALL);
const SMALL_G = defaultGeneratorConfig({ ...SMALL, zDim: 8, wDim: 8, mappingLayers: 2 });

/** Gradients in D's weights of sum(R1) on random images. */
async function r1WeightGrads(convOps?: ConvOps) {
  const params = variables(initParams(Discriminator.specs(SMALL_D), 1));
  const D = new Discriminator(SMALL_D, params, { convOps });
  const reals = tf.randomUniform([4, 16, 16, 3], -1, 1, 'float32', 2) as tf.Tensor4D;
  const { grads } = tf.variableGrads(() => tf.sum(r1Penalty((x) => D.forward(x), reals)) as tf.Scalar);
  return hostGrads(grads, params);
}

/** Gradients in G's weights of the path-length penalty at random ws. */
async function pathLengthWeightGrads(convOps?: ConvOps) {
  const params = variables(initParams(Generator.specs(SMALL_G), 3));
  const G = new Generator(SMALL_G, params, { convOps });
  const ws = tf.randomNormal([2, G.numWs, 8], 0, 1, 'float32', 4) as tf.Tensor3D;
  const { grads } = tf.variableGrads(() => {
    const pl = pathLengthPenalty((w) => G.synthesize(w, { noiseMode: 'const' }), ws, 0, { seed: 5 });
    pl.mean.dispose();
    return tf.sum(pl.penalty) as tf.Scalar;
  });
  return hostGrads(grads, params);
}

/**
 * Every parameter's gradient equals the reference, relative to its own largest entry (floored at
 * 1e-3 of the network's largest, for the nearly-zero ones). Some are legitimately zero (biases whose only effect on a piecewise-linear D's input
 * gradient is at kinks, buffers multiplied by a zero-initialised strength), but most must not be.
 */
function expectSameGrads(ours: Map<string, HostTensor>, reference: Map<string, HostTensor>, tol: number) {
  expect([...ours.keys()].sort()).toEqual([...reference.keys()].sort());
  const scale = Math.max(...[...reference.values()].flatMap((g) => Array.from(g.data, Math.abs)));
  const nonZero = [...ours.values()].filter((g) => g.data.some((v) => v !== 0)).length;
  expect(nonZero / ours.size).toBeGreaterThan(0.7);
  for (const [name, g] of ours) {
    expect(relativeError(g, reference.get(name)!, 1e-3 * scale), name).toBeLessThan(tol);
  }
}

let fixture: ParityFixture;
let nativeR1: Map<string, HostTensor>;
let nativePathLength: Map<string, HostTensor>;

beforeAll(async () => {
  fixture = await loadParityFixture();
  // Reference: tfjs's native convolutions on cpu, which has every gradient kernel; the activation
  // gradients must be replaced there too, or the second backward pass fails on Greater.
  installSecondOrderGradients();
  ({ nativeR1, nativePathLength } = await onCpu(async () => ({
    nativeR1: await r1WeightGrads(),
    nativePathLength: await pathLengthWeightGrads(),
  })));
});

// webgpu (lavapipe in CI) runs its own programs on these paths: the fused epilogue, the dense
// layers, the FIR and the filter gradient.
for (const backend of [...TRAIN_BACKENDS, 'webgpu' as const]) {
  describe(`second-order training paths on ${backend}`, () => {
    let convOps: ConvOps;
    let available = true;
    beforeAll(async () => {
      try {
        await initBackend(backend);
      } catch (err) {
        if (backend !== 'webgpu' || process.env.CI_REQUIRE_WEBGPU || !(err instanceof BackendError))
          throw err;
        console.warn(
          `skipped: no WebGPU adapter (set CI_REQUIRE_WEBGPU=1 to make this fail): ${err.message}`,
        );
        available = false;
        return;
      }
      convOps = trainingConvOps();
    });
    const skipWithout = (ctx: TestContext) => {
      if (!available) ctx.skip('no WebGPU adapter on this machine');
    };

    it('R1 matches the fixture r1_per_image', async (ctx) => {
      skipWithout(ctx);
      const D = new Discriminator(fixture.config.D!, fixture.D, { convOps });
      const r1 = await r1Penalty((x) => D.forward(x), nchwToNhwc(fixture.refs.get('real')!)).data();
      const expected = fixture.refs.get('r1_per_image')!.data;
      for (let i = 0; i < expected.length; i++) {
        expect(Math.abs(r1[i] - expected[i]) / Math.abs(expected[i]), `image ${i}`).toBeLessThan(R1_REL_TOL);
      }
    });

    it("R1's gradients in every D weight match native convolutions on cpu", async (ctx) => {
      skipWithout(ctx);
      expectSameGrads(await r1WeightGrads(convOps), nativeR1, 1e-3);
    });

    it("the path-length penalty's gradients in every G weight match native convolutions on cpu", async (ctx) => {
      skipWithout(ctx);
      expectSameGrads(await pathLengthWeightGrads(convOps), nativePathLength, 1e-3);
    });
  });
}
