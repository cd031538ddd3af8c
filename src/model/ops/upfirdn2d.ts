// upfirdn2d: upsample (zero insertion), pad, FIR filter, downsample, as NVlabs' torch_utils op of
// the same name, on NHWC tensors. The FIR is applied as a depthwise convolution wrapped in a custom
// gradient whose backward pass is the adjoint FIR (the same op with the flipped filter), so it
// differentiates to any order on every backend (wasm has no depthwise-conv gradient kernels).
import { tf } from '../tf.ts';
import { upfirdn2dWebGPU } from './webgpu/upfirdn2d.ts';

/** [1, 3, 3, 1]: the official StyleGAN2 resampling filter. */
export const RESAMPLE_FILTER = [1, 3, 3, 1];

/** [x0, x1, y0, y1]: pixels added (negative: removed) before/after each axis, as the official op. */
export type Padding4 = [number, number, number, number];

const kernelCache = new Map<string, tf.Tensor4D>();

/** 2D kernel (outer product, normalised to sum 1, times gain) for depthwise conv: [kh, kw, C, 1]. */
function firKernel(taps: number[], gain: number, channels: number, flip: boolean): tf.Tensor4D {
  const key = `${taps.join(',')}|${gain}|${channels}|${flip}`;
  let kernel = kernelCache.get(key);
  if (!kernel || kernel.isDisposed) {
    const sum = taps.reduce((a, b) => a + b, 0);
    const f = (flip ? [...taps].reverse() : taps).map((t) => t / sum);
    const k = f.length;
    const values = new Float32Array(k * k * channels);
    for (let y = 0; y < k; y++)
      for (let x = 0; x < k; x++)
        for (let c = 0; c < channels; c++) values[(y * k + x) * channels + c] = f[y] * f[x] * gain;
    kernel = tf.keep(tf.tensor4d(values, [k, k, channels, 1]));
    kernelCache.set(key, kernel);
  }
  return kernel;
}

/**
 * Valid correlation of every channel with the 2D kernel built from `taps` (flipped unless
 * `correlate`), after padding/cropping by `pad`. Linear in x, so its gradient is the same operation
 * with the kernel flipped and the padding mirrored: `firFilter` differentiates to any order.
 */
export function firFilter(
  x: tf.Tensor4D,
  taps: number[],
  pad: Padding4,
  gain = 1,
  flipKernel = true,
): tf.Tensor4D {
  // One program on webgpu (pad, FIR and their gradients fused), the composite elsewhere.
  if (tf.getBackend() === 'webgpu')
    return upfirdn2dWebGPU(x, { up: 1, down: 1, pad, taps, gain, flip: flipKernel });
  const [x0, x1, y0, y1] = pad;
  const k = taps.length;
  const op = tf.customGrad((input: tf.Tensor | tf.GradSaveFunc) => {
    const inp = input as tf.Tensor4D;
    const kernel = firKernel(taps, gain, inp.shape[3], flipKernel);
    // Zero padding goes into the convolution itself (one program less); crops need a slice first.
    const value = pad.every((p) => p >= 0)
      ? tf.depthwiseConv2d(inp, kernel, 1, [
          [0, 0],
          [y0, y1],
          [x0, x1],
          [0, 0],
        ])
      : tf.depthwiseConv2d(padOrCrop(inp, pad), kernel, 1, 'valid');
    const gradFunc = (dy: tf.Tensor) => {
      // Adjoint: full correlation with the flipped kernel, then undo the padding.
      const [H, W] = [inp.shape[1], inp.shape[2]];
      const dyPad: Padding4 = [k - 1 - x0, k - 1 - x1, k - 1 - y0, k - 1 - y1];
      const dx = firFilter(dy as tf.Tensor4D, taps, dyPad, gain, !flipKernel);
      tf.util.assert(
        dx.shape[1] === H && dx.shape[2] === W,
        () => `firFilter adjoint shape ${dx.shape} != ${inp.shape}`,
      );
      return dx;
    };
    return { value, gradFunc };
  });
  return op(x) as tf.Tensor4D;
}

/** Zero-pads (positive) or crops (negative) the spatial axes. */
export function padOrCrop(x: tf.Tensor4D, [x0, x1, y0, y1]: Padding4): tf.Tensor4D {
  let out = x;
  if (x0 > 0 || x1 > 0 || y0 > 0 || y1 > 0) {
    out = tf.pad(out, [
      [0, 0],
      [Math.max(y0, 0), Math.max(y1, 0)],
      [Math.max(x0, 0), Math.max(x1, 0)],
      [0, 0],
    ]);
  }
  if (x0 < 0 || x1 < 0 || y0 < 0 || y1 < 0) {
    const [n, h, w, c] = out.shape;
    const top = Math.max(-y0, 0);
    const left = Math.max(-x0, 0);
    out = tf.slice(out, [0, top, left, 0], [n, h - top - Math.max(-y1, 0), w - left - Math.max(-x1, 0), c]);
  }
  return out;
}

// zeroInsert and decimate keep every intermediate at rank <= 4: tfjs lacks some rank-5 gradients,
// and the webgpu backend cannot compile some rank-6 shaders.

/** Inserts (factor - 1) zeros after every pixel along H and W. */
export function zeroInsert(x: tf.Tensor4D, factor: number): tf.Tensor4D {
  if (factor === 1) return x;
  const [n, h, w, c] = x.shape;
  const cols = tf.reshape(x, [n * h, w, 1, c]);
  const alongW = tf.concat([cols, tf.zeros([n * h, w, factor - 1, c])], 2); // [N*H, W, factor, C]
  const rows = tf.reshape(alongW, [n, h, 1, w * factor * c]);
  const alongH = tf.concat([rows, tf.zeros([n, h, factor - 1, w * factor * c])], 2); // [N, H, factor, W*factor*C]
  return tf.reshape(alongH, [n, h * factor, w * factor, c]);
}

/** Keeps every `factor`-th pixel (starting at 0) along H and W. */
export function decimate(x: tf.Tensor4D, factor: number): tf.Tensor4D {
  if (factor === 1) return x;
  const [n, h, w, c] = x.shape;
  const hh = Math.ceil(h / factor);
  const ww = Math.ceil(w / factor);
  const padded = padOrCrop(x, [0, ww * factor - w, 0, hh * factor - h]);
  const rows = tf.slice(
    tf.reshape(padded, [n * hh, factor, ww * factor, c]),
    [0, 0, 0, 0],
    [n * hh, 1, ww * factor, c],
  );
  const cols = tf.slice(tf.reshape(rows, [n * hh, ww, factor, c]), [0, 0, 0, 0], [n * hh, ww, 1, c]);
  return tf.reshape(cols, [n, hh, ww, c]);
}

export interface UpFirDnOptions {
  up?: number;
  down?: number;
  pad?: Padding4;
  gain?: number;
}

/** The official upfirdn2d (with flip_filter=False), separable filter given by its 1D taps. */
export function upfirdn2d(x: tf.Tensor4D, taps: number[], opts: UpFirDnOptions = {}): tf.Tensor4D {
  const { up = 1, down = 1, pad = [0, 0, 0, 0], gain = 1 } = opts;
  if (tf.getBackend() === 'webgpu') return upfirdn2dWebGPU(x, { up, down, pad, taps, gain, flip: true });
  return tf.tidy(() => decimate(firFilter(zeroInsert(x, up), taps, pad, gain), down));
}

/**
 * 2x upsampling as the official upsample2d (used on the skip images); on webgpu one upfirdn2d
 * program each way.
 */
export function upsample2d(x: tf.Tensor4D, taps: number[] = RESAMPLE_FILTER, factor = 2): tf.Tensor4D {
  const fw = taps.length;
  const pad: Padding4 = [
    Math.floor((fw + factor - 1) / 2),
    Math.floor((fw - factor) / 2),
    Math.floor((fw + factor - 1) / 2),
    Math.floor((fw - factor) / 2),
  ];
  return upfirdn2d(x, taps, { up: factor, pad, gain: factor * factor });
}
