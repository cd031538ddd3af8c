import { describe, expect, it } from 'vitest';
import { tensorToRgb, toUint8Pixel } from '../../src/images/tensor-image.ts';
import { tf } from '../../src/model/tf.ts';

describe('tensorToRgb: gen_images.py mapping (img * 127.5 + 128).clamp(0, 255).to(uint8)', () => {
  it('maps -1, 0 and 1 to 0, 128 and 255, clamps, and truncates toward zero', async () => {
    const values = [-1, 0, 1, -3, 5, 0.5, -0.5, 0.996, Number.NaN, -1.0039, 0.99, 0.001];
    // 0.5 -> 191.75 -> 191; -0.5 -> 64.25 -> 64; 0.996 -> 254.99 -> 254; 0.99 -> 254.225 -> 254.
    const expected = [0, 128, 255, 0, 255, 191, 64, 254, 0, 0, 254, 128];
    const t = tf.tensor4d(values, [1, 2, 2, 3]);
    const [img] = await tensorToRgb(t);
    t.dispose();
    expect(img.width).toBe(2);
    expect(img.height).toBe(2);
    expect([...img.data]).toEqual(expected);
  });

  it('rounds as float32 arithmetic does, where float64 would truncate to one less', () => {
    // Float32 inputs and results computed with numpy float32 arithmetic (what torch does on the
    // official path); in float64 each of these lands just below the integer, e.g. 0.99999997.
    const cases: Array<[number, number]> = [
      [-0.9960784316062927, 1],
      [-0.501960813999176, 64],
      [0.007843134924769402, 129],
      [0.5647058486938477, 200],
      [0.9882352352142334, 254],
    ];
    for (const [input, official] of cases) {
      expect(Math.trunc(input * 127.5 + 128)).toBe(official - 1);
      expect(toUint8Pixel(input)).toBe(official);
    }
  });

  it('splits a batch into images in NHWC order', async () => {
    const [n, h, w] = [3, 2, 4];
    const data = new Float32Array(n * h * w * 3);
    // Image i is a flat colour whose channels encode (i, channel).
    for (let i = 0; i < n; i++)
      for (let p = 0; p < h * w; p++)
        for (let c = 0; c < 3; c++) data[(i * h * w + p) * 3 + c] = (i * 3 + c) / 10 - 0.4;
    const t = tf.tensor4d(data, [n, h, w, 3]);
    const images = await tensorToRgb(t);
    t.dispose();
    expect(images).toHaveLength(n);
    for (const [i, img] of images.entries()) {
      expect([img.width, img.height, img.data.length]).toEqual([w, h, w * h * 3]);
      const colour = [0, 1, 2].map((c) => toUint8Pixel(Math.fround((i * 3 + c) / 10 - 0.4)));
      expect([...img.data.subarray(0, 3)]).toEqual(colour);
      expect([...img.data.subarray(img.data.length - 3)]).toEqual(colour);
    }
  });

  it('shows one-channel images as gray RGB and rejects other channel counts', async () => {
    const gray = tf.tensor4d([-1, 1], [1, 1, 2, 1]);
    const [img] = await tensorToRgb(gray);
    gray.dispose();
    expect([...img.data]).toEqual([0, 0, 0, 255, 255, 255]);
    const four = tf.zeros([1, 2, 2, 4]) as tf.Tensor4D;
    await expect(tensorToRgb(four)).rejects.toThrow(/1 or 3 image channels, got 4/);
    four.dispose();
  });
});
