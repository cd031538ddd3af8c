// Shared by the tests of single webgpu programs against the stock tfjs composite they replace:
// the backend (skipped without an adapter unless CI_REQUIRE_WEBGPU), seeded inputs, and the
// comparison of outputs and gradients.
import { beforeAll, expect, type TestContext } from 'vitest';
import { BackendError, initBackend, readTensor } from '../../src/model/backend.ts';
import { installSecondOrderGradients } from '../../src/model/ops/grad/activations.ts';
import { tf } from '../../src/model/tf.ts';

/**
 * Starts webgpu (with the second-order gradients) before the file's tests; returns the check that
 * skips a test where no adapter exists.
 */
export function useWebGpuKernels(): (ctx: TestContext) => void {
  let available = true;
  beforeAll(async () => {
    try {
      await initBackend('webgpu');
      installSecondOrderGradients();
    } catch (err) {
      if (process.env.CI_REQUIRE_WEBGPU || !(err instanceof BackendError)) throw err;
      console.warn(`skipped: no WebGPU adapter (set CI_REQUIRE_WEBGPU=1 to make this fail): ${err.message}`);
      available = false;
    }
  });
  return (ctx) => {
    if (!available) ctx.skip('no WebGPU adapter on this machine');
  };
}

/** Normal values of `shape` from `seed`, times `scale`. */
export function seeded(shape: number[], seed: number, scale = 1): tf.Tensor {
  return tf.mul(tf.randomNormal(shape, 0, 1, 'float32', seed), scale);
}

/** max |a - b| below `tol` times max |b|, and b not all zero (a zero gradient would prove nothing). */
export async function expectClose(a: tf.Tensor, b: tf.Tensor, what: string, tol = 1e-5): Promise<void> {
  expect(a.shape, what).toEqual(b.shape);
  const [va, vb] = [await readTensor(a), await readTensor(b)];
  // A loop, not Math.max(...): long gradients are too long to spread into arguments.
  const scale = vb.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-6);
  let worst = 0;
  for (let i = 0; i < va.length; i++) worst = Math.max(worst, Math.abs(va[i] - vb[i]));
  expect(worst / scale, what).toBeLessThan(tol);
  expect(
    Array.from(vb).some((v) => v !== 0),
    `${what} is not all zero`,
  ).toBe(true);
}
