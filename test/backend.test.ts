// Backend selection. All cases share this file's process and so one tfjs engine: each backend is
// started once and later cases switch between the started ones, as the application does.
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import { UserError } from '../src/errors.ts';
import {
  BackendError,
  type BackendInfo,
  backendName,
  initBackend,
  readTensor,
} from '../src/model/backend.ts';
import { tf } from '../src/model/tf.ts';

// Pin Dawn to lavapipe where it is installed, so the software-adapter cases below are
// deterministic even on a machine that also has a GPU.
const ICD_DIR = '/usr/share/vulkan/icd.d';
const lavapipeIcd = (() => {
  try {
    const file = readdirSync(ICD_DIR).find((name) => /^lvp_icd.*\.json$/.test(name));
    return file && join(ICD_DIR, file);
  } catch {
    return undefined;
  }
})();
const pinnedToLavapipe = !process.env.VK_DRIVER_FILES && !process.env.VK_ICD_FILENAMES && !!lavapipeIcd;
if (pinnedToLavapipe) process.env.VK_DRIVER_FILES = lavapipeIcd;

const tensorflowInstalled = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'].some((pkg) => {
  try {
    createRequire(import.meta.url).resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
});

// x[r][c] = 4r + c + 1 on a 4x4 image; the kernel is asymmetric so a flipped (true convolution)
// or transposed implementation gives different numbers. Valid conv, worked by hand:
// out(r, c) = x[r][c] + 2 x[r][c+1] + x[r+1][c+1] + 3 x[r+2][c+2]
//   (0,0) = 1 + 4 + 6 + 33 = 44    (0,1) = 2 + 6 + 7 + 36 = 51
//   (1,0) = 5 + 12 + 10 + 45 = 72  (1,1) = 6 + 14 + 11 + 48 = 79
const EXPECTED_CONV = [44, 51, 72, 79];

async function smallConv(): Promise<number[]> {
  const x = tf.tensor4d(
    Array.from({ length: 16 }, (_, i) => i + 1),
    [1, 4, 4, 1],
  );
  const w = tf.tensor4d([1, 2, 0, 0, 1, 0, 0, 0, 3], [3, 3, 1, 1]);
  const y = tf.conv2d(x, w, 1, 'valid');
  expect(y.shape).toEqual([1, 2, 2, 1]);
  const values = Array.from(await readTensor(y));
  tf.dispose([x, w, y]);
  return values;
}

async function webgpuOrSkip(ctx: TestContext): Promise<BackendInfo> {
  try {
    return await initBackend('webgpu');
  } catch (err) {
    if (process.env.CI_REQUIRE_WEBGPU || !(err instanceof BackendError)) throw err;
    const reason = `no WebGPU adapter on this machine (set CI_REQUIRE_WEBGPU=1 to make this fail): ${err.message}`;
    console.warn(`skipped: ${reason}`);
    return ctx.skip(reason);
  }
}

describe('initBackend', () => {
  it('starts cpu, computes a conv2d, and returns the cached info on a second call', async () => {
    const info = await initBackend('cpu');
    expect(info).toMatchObject({ name: 'cpu', requested: 'cpu' });
    expect(backendName()).toBe('cpu');
    expect(await smallConv()).toEqual(EXPECTED_CONV);
    expect(await initBackend('cpu')).toBe(info);
  });

  it('reads int32 tensors as float32', async () => {
    await initBackend('cpu');
    const values = await readTensor(tf.tensor1d([3, -7], 'int32'));
    expect(values).toBeInstanceOf(Float32Array);
    expect(Array.from(values)).toEqual([3, -7]);
  });

  it('starts wasm from the package files, then switches back to cpu on request', async () => {
    const info = await initBackend('wasm');
    expect(info.name).toBe('wasm');
    expect(info.detail).toMatch(/SIMD/);
    expect(backendName()).toBe('wasm');
    expect(await smallConv()).toEqual(EXPECTED_CONV);
    await initBackend('cpu');
    expect(backendName()).toBe('cpu');
  });

  it('takes the backend from FACESTYLE_BACKEND when none is given', async () => {
    const saved = process.env.FACESTYLE_BACKEND;
    process.env.FACESTYLE_BACKEND = 'wasm';
    try {
      expect((await initBackend()).name).toBe('wasm');
    } finally {
      if (saved === undefined) delete process.env.FACESTYLE_BACKEND;
      else process.env.FACESTYLE_BACKEND = saved;
    }
  });

  it('starts webgpu through Dawn and describes the adapter', async (ctx) => {
    const info = await webgpuOrSkip(ctx);
    expect(info.name).toBe('webgpu');
    expect(backendName()).toBe('webgpu');
    expect(info.adapter?.features.length).toBeGreaterThan(0);
    if (pinnedToLavapipe) {
      expect(info.adapter).toMatchObject({ vendor: 'mesa', architecture: 'software', isSoftware: true });
      expect(info.adapter?.device).toMatch(/^llvmpipe/);
      expect(info.detail).toMatch(/software/);
    }
  });

  it('computes the conv2d on webgpu, read back without dataSync', async (ctx) => {
    await webgpuOrSkip(ctx);
    expect(await smallConv()).toEqual(EXPECTED_CONV);
  });

  it('auto never picks a software adapter, and takes a hardware one over wasm', async (ctx) => {
    const webgpu = await webgpuOrSkip(ctx);
    const auto = await initBackend('auto');
    expect(backendName()).toBe(auto.name);
    if (tensorflowInstalled) {
      expect(auto.name).toBe('tensorflow');
    } else if (webgpu.adapter?.isSoftware) {
      expect(auto.name).toBe('wasm');
      expect(auto.detail).toMatch(/skipped .*webgpu: software adapter/);
    } else {
      expect(auto.name).toBe('webgpu');
    }
    expect(await smallConv()).toEqual(EXPECTED_CONV);
  });

  it('rejects an unknown backend name, listing the valid ones', async () => {
    const err = await initBackend('tpu').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect(err).toBeInstanceOf(UserError);
    expect((err as BackendError).message).toBe('unknown backend "tpu"');
    expect((err as BackendError).hint).toBe('use one of: auto, webgpu, wasm, cpu, tensorflow');
  });

  it.skipIf(tensorflowInstalled)('says what to install when tfjs-node is missing', async () => {
    const before = backendName();
    const err = await initBackend('tensorflow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).message).toMatch(/@tensorflow\/tfjs-node-gpu .*not installed/);
    expect((err as BackendError).hint).toMatch(
      /npm install @tensorflow\/tfjs-node-gpu .*or @tensorflow\/tfjs-node/,
    );
    expect(backendName()).toBe(before);
  });
});
