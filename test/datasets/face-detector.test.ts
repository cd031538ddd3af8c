// Face detection runs in a worker thread with a tfjs engine of its own: a detection must leave the
// calling thread's backend and tensors alone (the GPU worker's fine-tune on webgpu, while a
// toonify aligns its photo) and its event loop free (the bot ingesting an archive), start again
// after its thread dies, and neither end a process early nor keep an idle one alive.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { closeFaceDetector, detectFaces, detectionsInFlight } from '../../src/datasets/face-detector.ts';
import { type RgbImage, toRgb } from '../../src/datasets/image.ts';
import { initBackend } from '../../src/model/backend.ts';
import { tf } from '../../src/model/tf.ts';
import { DEMO_PHOTOS } from './helpers/fixtures.ts';

const MIN_SCORE = 0.5;
const ROOT = join(import.meta.dirname, '../..');

let photo: RgbImage;
beforeAll(async () => {
  await initBackend('cpu');
  photo = await toRgb(sharp(DEMO_PHOTOS[0]));
});

describe('detectFaces in its own thread', () => {
  it("leaves this thread's backend and tensors as they were", async () => {
    const before = tf.tensor1d([1, 2, 3]);
    const pixels = Buffer.from(photo.data);
    const faces = await detectFaces(photo, MIN_SCORE);
    expect(faces).toHaveLength(3);
    expect(faces[0].landmarks).toHaveLength(68);
    expect(faces[0].score).toBeGreaterThan(0.9);
    // Still on cpu, and wasm never even started in this thread's engine.
    expect(tf.getBackend()).toBe('cpu');
    expect(Object.keys(tf.engine().registry)).not.toContain('wasm');
    expect(Array.from(before.dataSync())).toEqual([1, 2, 3]);
    expect(Array.from(tf.add(before, 1).dataSync())).toEqual([2, 3, 4]);
    before.dispose();
    // The caller's image is copied, not handed over.
    expect(photo.data.equals(pixels)).toBe(true);
  });

  it("keeps this thread's event loop turning during a detection", async () => {
    await detectFaces(photo, MIN_SCORE); // the thread and its models are ready
    let ticks = 0;
    const backends = new Set<string>();
    const timer = setInterval(() => {
      ticks++;
      backends.add(tf.getBackend());
    }, 10);
    const startedAt = performance.now();
    try {
      expect(await detectFaces(photo, MIN_SCORE)).toHaveLength(3);
    } finally {
      clearInterval(timer);
    }
    const ms = performance.now() - startedAt;
    // A detection of a 1920 px photo is ~350 ms of wasm work; on this thread it would be one
    // stretch without a single timer tick.
    expect(ms).toBeGreaterThan(50);
    expect(ticks).toBeGreaterThanOrEqual(5);
    expect([...backends]).toEqual(['cpu']);
  });

  it('rejects with the reason a detection failed, and detects again after', async () => {
    const broken = { data: Buffer.alloc(10), width: 64, height: 64 };
    await expect(detectFaces(broken, MIN_SCORE)).rejects.toThrow(/^face detection failed: .*12288/);
    expect(await detectFaces(photo, MIN_SCORE)).toHaveLength(3);
  });

  it('starts a new thread when its thread is gone', async () => {
    const running = detectFaces(photo, MIN_SCORE).catch((err: unknown) => err);
    // Let the request reach the thread (after its resize, which a loaded machine makes slow), then
    // end it under the detection.
    while (detectionsInFlight() === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await closeFaceDetector();
    expect(await running).toEqual(new Error('the face detection thread exited: it was closed'));
    expect(await detectFaces(photo, MIN_SCORE)).toHaveLength(3);
    await closeFaceDetector();
    await closeFaceDetector(); // nothing left to close
  });

  it('keeps a process alive while it detects, and not after', async () => {
    const script = [
      "import { createRequire } from 'node:module';",
      "const sharp = createRequire(process.cwd() + '/package.json')('sharp');",
      "const { detectFaces } = await import('./src/datasets/face-detector.ts');",
      "const { toRgb } = await import('./src/datasets/image.ts');",
      `const photo = await toRgb(sharp(${JSON.stringify(DEMO_PHOTOS[0])}));`,
      `const first = await detectFaces(photo, ${MIN_SCORE});`,
      'await new Promise((resolve) => setTimeout(resolve, 200));',
      `const second = await detectFaces(photo, ${MIN_SCORE});`,
      "console.log('faces', first.length, second.length);",
    ].join('\n');
    // An unref'd thread under the second await (the first one is kept alive by the thread's start)
    // would let the process exit before printing (code 13); a ref'd idle one would keep it running
    // until the timeout kills it.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: ROOT, timeout: 60_000 },
    );
    expect(stdout.trim()).toBe('faces 3 3');
  });
});
