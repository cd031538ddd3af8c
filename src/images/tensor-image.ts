// Generator output -> 8-bit pixels, with the official gen_images.py mapping:
// (img * 127.5 + 128).clamp(0, 255).to(torch.uint8). The +128 (not 127.5) and the truncation of
// the float32 result are what make our PNGs byte-identical to NVIDIA's for the same tensor.

/**
 * What tensorToRgb reads of a tf.Tensor4D, as a structural type: the images layer sits below the
 * model layer and does not import it.
 */
export interface NhwcTensor {
  readonly rank: number;
  readonly shape: number[];
  data(): Promise<ArrayLike<number>>;
}

/** Packed 8-bit RGB, row-major, no padding. */
export interface RgbImage {
  width: number;
  height: number;
  data: Buffer;
}

/** One official pixel value from a generator output value. */
export function toUint8Pixel(value: number): number {
  // Math.fround after each step reproduces torch's float32 arithmetic exactly: both the product
  // and the sum are exact in float64 before rounding, so a single rounding happens as in float32.
  const scaled = Math.fround(Math.fround(value * 127.5) + 128);
  if (!(scaled > 0)) return 0; // also NaN, which torch leaves undefined
  if (scaled >= 255) return 255;
  return Math.trunc(scaled);
}

/**
 * Converts NHWC generator images in [-1, 1] (1 or 3 channels) to one RGB image each.
 * The tensor stays owned by the caller.
 */
export async function tensorToRgb(images: NhwcTensor): Promise<RgbImage[]> {
  if (images.rank !== 4) throw new Error(`expected NHWC images of rank 4, got shape [${images.shape}]`);
  const [count, height, width, channels] = images.shape;
  if (channels !== 3 && channels !== 1) {
    throw new Error(`expected 1 or 3 image channels, got ${channels} (shape [${images.shape}])`);
  }
  const values = await images.data();
  const pixels = height * width;
  const out: RgbImage[] = [];
  for (let n = 0; n < count; n++) {
    const data = Buffer.allocUnsafe(pixels * 3);
    const base = n * pixels * channels;
    if (channels === 3) {
      for (let i = 0; i < pixels * 3; i++) data[i] = toUint8Pixel(values[base + i]);
    } else {
      // Grayscale models are shown as gray RGB so every consumer handles one layout.
      for (let i = 0; i < pixels; i++) {
        const v = toUint8Pixel(values[base + i]);
        data[3 * i] = v;
        data[3 * i + 1] = v;
        data[3 * i + 2] = v;
      }
    }
    out.push({ width, height, data });
  }
  return out;
}
