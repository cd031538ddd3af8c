// Convolutions as NVlabs' conv2d_resample, on NHWC activations and HWIO weights.
import { tf } from '../tf.ts';
import { firFilter, type Padding4, RESAMPLE_FILTER, upfirdn2d } from './upfirdn2d.ts';

export type SpatialPadding = [[number, number], [number, number]];

/** The two convolution primitives every layer is built from. */
export interface ConvOps {
  /** Correlation, x [N,H,W,I], w [kh,kw,I,O], explicit zero padding. */
  conv2d(x: tf.Tensor4D, w: tf.Tensor4D, stride: 1 | 2, pad: SpatialPadding): tf.Tensor4D;
  /**
   * Transposed convolution without padding: out[s*i + a] += x[i] * w[a] (no kernel flip),
   * w [kh,kw,I,O], output [N, s(H-1)+kh, s(W-1)+kw, O]: the adjoint of a strided correlation.
   */
  conv2dTranspose(x: tf.Tensor4D, w: tf.Tensor4D, stride: 2): tf.Tensor4D;
}

export const nativeConvOps: ConvOps = {
  conv2d: (x, w, stride, pad) => tf.conv2d(x, w, stride, [[0, 0], pad[0], pad[1], [0, 0]]),
  conv2dTranspose: (x, w, stride) => {
    const [n, h, wd] = x.shape;
    const [kh, kw, , o] = w.shape;
    const outShape: [number, number, number, number] = [n, stride * (h - 1) + kh, stride * (wd - 1) + kw, o];
    return tf.conv2dTranspose(x, tf.transpose(w, [0, 1, 3, 2]) as tf.Tensor4D, outShape, stride, 'valid');
  },
};

let convOps: ConvOps = nativeConvOps;

/**
 * Runs `fn` with every convolution of the layers it calls going through `ops`, then restores the
 * previous choice. The choice belongs to one call (a network instance passes its own), never to the
 * process: a worker may train one model while it generates with another. `fn` must be synchronous
 * (tfjs ops are); the gradients of the convolutions it records are fixed when they are recorded.
 */
export function withConvOps<T>(ops: ConvOps | undefined, fn: () => T): T {
  if (!ops || ops === convOps) return fn();
  const previous = convOps;
  convOps = ops;
  try {
    return fn();
  } finally {
    convOps = previous;
  }
}

export function conv2d(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  stride: 1 | 2 = 1,
  pad: SpatialPadding = [
    [0, 0],
    [0, 0],
  ],
): tf.Tensor4D {
  return convOps.conv2d(x, w, stride, pad);
}

/** Flips a HWIO kernel spatially: PyTorch's "convolution" (flip_weight=False) vs correlation. */
export function flipKernel(w: tf.Tensor4D): tf.Tensor4D {
  return tf.reverse(w, [0, 1]);
}

export interface ResampleOptions {
  up?: 1 | 2;
  down?: 1 | 2;
  /** Padding of the (upsampled) input, as the official `padding` argument: kernel_size // 2. */
  padding: number;
  /** False = true convolution (the official synthesis layers with up=2 use this). */
  flipWeight?: boolean;
  taps?: number[];
}

/**
 * conv2d_resample: 2D convolution with optional 2x up- or downsampling through the FIR filter, padding
 * applied once at the start. Shapes: x [N,H,W,I], w [kh,kw,I,O] -> [N, H*up/down, W*up/down, O].
 */
export function conv2dResample(x: tf.Tensor4D, w: tf.Tensor4D, opts: ResampleOptions): tf.Tensor4D {
  const { up = 1, down = 1, padding, flipWeight = true, taps = RESAMPLE_FILTER } = opts;
  const [kh, kw] = w.shape;
  tf.util.assert(kh === kw, () => 'square kernels only');
  const fw = taps.length;
  let p0 = padding;
  let p1 = padding;
  if (up > 1) {
    p0 += Math.floor((fw + up - 1) / 2);
    p1 += Math.floor((fw - up) / 2);
  }
  if (down > 1) {
    p0 += Math.floor((fw - down + 1) / 2);
    p1 += Math.floor((fw - down) / 2);
  }
  const pad4: Padding4 = [p0, p1, p0, p1];
  if (
    up > 1 &&
    upConvMethod() === 'polyphase' &&
    kw === 3 &&
    padding === 1 &&
    taps.length === 4 &&
    up === 2
  ) {
    return upConv3x3Polyphase(x, w, taps, flipWeight);
  }
  if (up > 1) {
    // Transposed convolution (4x fewer multiplications than convolving the zero-inserted
    // image, and than the polyphase form), then the FIR on its output, as the official fast path.
    const q0 = p0 - (kw - 1);
    const q1 = p1 - (kw - up);
    tf.util.assert(q0 >= 0 && q1 >= 0, () => 'conv2dResample: unsupported padding for upsampling');
    if (kw === 3 && up === 2 && q1 >= 1 && PHASE_UP_CONV_BACKENDS.has(tf.getBackend())) {
      // The phases' output carries one zero row and column after the transposed conv's.
      const y = transposedConv3x3Phases(x, w, flipWeight);
      return firFilter(y, taps, [q0, q1 - 1, q0, q1 - 1], up * up);
    }
    let y: tf.Tensor4D;
    if (convOps === nativeConvOps) {
      // tfjs's own transposed conv wants [kh, kw, O, I]: laid out once per weight value.
      const [kernel] = derivedFromWeight(w, `transposedOI|${flipWeight}`, () => [
        tf.transpose(flipWeight ? flipKernel(w) : w, [0, 1, 3, 2]),
      ]) as [tf.Tensor4D];
      const [n, h, wd] = x.shape;
      const outShape: [number, number, number, number] = [
        n,
        2 * (h - 1) + kh,
        2 * (wd - 1) + kw,
        kernel.shape[2],
      ];
      y = tf.conv2dTranspose(x, kernel, outShape, 2, 'valid');
    } else {
      y = convOps.conv2dTranspose(x, flipWeight ? flipKernel(w) : w, up as 2);
    }
    return firFilter(y, taps, [q0, q1, q0, q1], up * up);
  }

  const kernel = flipWeight ? w : flipKernel(w);
  if (kw === 1 && down > 1) {
    return conv2d(upfirdn2d(x, taps, { down, pad: pad4 }), kernel);
  }
  if (down > 1) {
    return conv2d(firFilter(x, taps, pad4), kernel, down as 2);
  }
  return conv2d(x, kernel, 1, [
    [p0, p1],
    [p0, p1],
  ]);
}

/**
 * How 2x-upsampling convolutions run: `transposed` (default) as NVlabs' conv2d_resample, the
 * official multiply-add count; `polyphase` the former stride-1 form with 4x the multiply-adds, kept
 * selectable (FACESTYLE_UP_CONV=polyphase, read per call) for before/after benchmarks only.
 */
export type UpConvMethod = 'transposed' | 'polyphase';

export function upConvMethod(): UpConvMethod {
  const value = process.env.FACESTYLE_UP_CONV;
  if (value === undefined || value === '' || value === 'transposed') return 'transposed';
  if (value === 'polyphase') return 'polyphase';
  throw new RangeError(`FACESTYLE_UP_CONV must be "transposed" or "polyphase", got "${value}"`);
}

const phaseMatrixCache = new Map<string, tf.Tensor2D>();

/**
 * [36, 9] matrix M with W4[ey,ex,py,px] = sum_ab M[(ey,ex,py,px),(a,b)] w[a,b]: the 3x3 kernel of
 * output phase (py, px) of "transposed 3x3 conv (stride 2), then the 4-tap FIR (gain 4)".
 */
function phaseMatrix(taps: number[], flipWeight: boolean): tf.Tensor2D {
  const key = `${taps.join(',')}|${flipWeight}`;
  let m = phaseMatrixCache.get(key);
  if (m && !m.isDisposed) return m;
  const sum = taps.reduce((a, b) => a + b, 0);
  // Per-axis FIR with gain sqrt(4) = 2, flipped as the official op does (flip_filter=False).
  const g = [...taps].reverse().map((t) => (2 * t) / sum);
  const values = new Float32Array(36 * 9);
  for (let ey = 0; ey < 3; ey++)
    for (let ex = 0; ex < 3; ex++)
      for (let py = 0; py < 2; py++)
        for (let px = 0; px < 2; px++) {
          const row = ((ey * 3 + ex) * 2 + py) * 2 + px;
          // Correlation tap e (0..2) reads input offset e-1, i.e. d = 1 - e in H_p[d].
          const dy = 1 - ey;
          const dx = 1 - ex;
          for (let a = 0; a < 3; a++)
            for (let b = 0; b < 3; b++) {
              // w index (a, b) = 2d + p + k - 1  =>  k = a - 2d - p + 1.
              const ky = a - 2 * dy - py + 1;
              const kx = b - 2 * dx - px + 1;
              if (ky < 0 || ky > 3 || kx < 0 || kx > 3) continue;
              // The transposed conv uses w unflipped when the layer asks for a true convolution.
              const [wa, wb] = flipWeight ? [2 - a, 2 - b] : [a, b];
              values[row * 9 + wa * 3 + wb] += g[ky] * g[kx];
            }
        }
  m = tf.keep(tf.tensor2d(values, [36, 9]));
  phaseMatrixCache.set(key, m);
  return m;
}

/**
 * 2x upsampling 3x3 conv + FIR as ONE stride-1 convolution producing the four output phases as
 * channels, then interleaved (depth-to-space). Same function as the official transposed-conv fast
 * path, but built from the plain convolution, which every backend runs fastest, and no FIR pass.
 */
function upConv3x3Polyphase(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  taps: number[],
  flipWeight: boolean,
): tf.Tensor4D {
  const [n, h, wd] = x.shape;
  const [, , i, o] = w.shape;
  const phases = tf.matMul(phaseMatrix(taps, flipWeight), tf.reshape(w, [9, i * o]));
  const w4 = tf.reshape(tf.transpose(tf.reshape(phases, [3, 3, 4, i, o]), [0, 1, 3, 2, 4]), [
    3,
    3,
    i,
    4 * o,
  ]) as tf.Tensor4D;
  const y = conv2d(x, w4, 1, [
    [1, 1],
    [1, 1],
  ]);
  // [N,H,W,(py,px,o)] -> [N*H, W, py, (px,o)] -> [N*H, py, W, (px,o)] -> [N, 2H, 2W, O]
  const interleaved = tf.transpose(tf.reshape(y, [n * h, wd, 2, 2 * o]), [0, 2, 1, 3]);
  return tf.reshape(interleaved, [n, 2 * h, 2 * wd, o]) as tf.Tensor4D;
}

// tfjs's wasm and cpu transposed convolutions are plain loops, several times slower than their
// forward convolutions (XNNPACK on wasm); there the transposed conv runs as four forward ones.
const PHASE_UP_CONV_BACKENDS = new Set(['wasm', 'cpu']);

interface DerivedWeights {
  dataId: object;
  tensors: tf.Tensor[];
}

const derivedCache = new Map<tf.Tensor, Map<string, DerivedWeights>>();

/**
 * Tensors derived from a weight (re-laid-out or sliced kernels), built once per weight value:
 * reused while the weight tensor lives and keeps its data (a Variable's assign changes its dataId),
 * rebuilt under a gradient tape (they must stay connected to the weight there). Entries of disposed
 * weights are freed on the next call.
 */
export function derivedFromWeight(w: tf.Tensor, tag: string, build: () => tf.Tensor[]): tf.Tensor[] {
  if (tf.engine().isTapeOn()) return build();
  releaseDerivedWeights();
  let entries = derivedCache.get(w);
  if (!entries) {
    entries = new Map();
    derivedCache.set(w, entries);
  }
  const cached = entries.get(tag);
  if (cached && cached.dataId === w.dataId) return cached.tensors;
  if (cached) tf.dispose(cached.tensors);
  const tensors = tf.tidy(build).map((t) => (t === w ? tf.clone(t) : t));
  for (const t of tensors) tf.keep(t);
  entries.set(tag, { dataId: w.dataId, tensors });
  return tensors;
}

/** Frees what derivedFromWeight built for weights disposed since (call after disposing a network). */
export function releaseDerivedWeights(): void {
  for (const [weight, entries] of derivedCache) {
    if (!weight.isDisposed) continue;
    for (const e of entries.values()) tf.dispose(e.tensors);
    derivedCache.delete(weight);
  }
}

/** Interleaves two [N,H,W,C] tensors along W: [N,H,2W,C] with a's pixels at even columns. */
export function interleaveColumns(a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = a.shape;
  const pair = tf.concat([tf.reshape(a, [n * h, w, 1, c]), tf.reshape(b, [n * h, w, 1, c])], 2);
  return tf.reshape(pair, [n, h, 2 * w, c]);
}

/** Interleaves two [N,H,W,C] tensors along H: [N,2H,W,C] with a's rows at even rows. */
export function interleaveRows(a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = a.shape;
  const pair = tf.concat([tf.reshape(a, [n, h, 1, w * c]), tf.reshape(b, [n, h, 1, w * c])], 2);
  return tf.reshape(pair, [n, 2 * h, w, c]);
}

/**
 * The four per-phase kernels of a stride-2 transposed 3x3 convolution with kernel k [3,3,I,O]
 * (out[2i + a] += x[i] k[a]): even outputs take taps {2, 0}, odd ones tap 1, in each direction.
 */
export function phaseKernels3x3(k: tf.Tensor4D): tf.Tensor4D[] {
  const [, , i, o] = k.shape;
  const row = (a: number) => tf.slice(k, [a, 0, 0, 0], [1, 3, i, o]);
  const evenRows = tf.concat([row(2), row(0)], 0);
  const oddRows = row(1);
  const col = (t: tf.Tensor4D, b: number) => tf.slice(t, [0, b, 0, 0], [t.shape[0], 1, i, o]);
  const evenCols = (t: tf.Tensor4D) => tf.concat([col(t, 2), col(t, 0)], 1);
  return [evenCols(evenRows), col(evenRows, 1), evenCols(oddRows), col(oddRows, 1)];
}

/**
 * The stride-2 transposed 3x3 convolution as four stride-1 convolutions (`conv`), one per output
 * phase, given phaseKernels3x3's kernels. 4 + 2 + 2 + 1 = 9 taps per input pixel: the transposed
 * conv's multiply-adds, on the forward kernel. Output [N, 2H+2, 2W+2, O]: the transposed conv's
 * [2H+1, 2W+1] and one zero row and column.
 */
export function transposedConv3x3ByPhases(
  x: tf.Tensor4D,
  [ee, eo, oe, oo]: tf.Tensor4D[],
  conv: (x: tf.Tensor4D, w: tf.Tensor4D, stride: 1, pad: SpatialPadding) => tf.Tensor4D = conv2d,
): tf.Tensor4D {
  // Zero padding after the odd phases gives every phase the even ones' [H+1, W+1].
  const even = interleaveColumns(
    conv(x, ee, 1, [
      [1, 1],
      [1, 1],
    ]),
    conv(x, eo, 1, [
      [1, 1],
      [0, 1],
    ]),
  );
  const odd = interleaveColumns(
    conv(x, oe, 1, [
      [0, 1],
      [1, 1],
    ]),
    conv(x, oo, 1, [
      [0, 1],
      [0, 1],
    ]),
  );
  return interleaveRows(even, odd);
}

/**
 * The stride-2 transposed 3x3 convolution (out[2i + a] += x[i] w[a], w = the layer's kernel,
 * flipped first when `flipWeight`) by phases (transposedConv3x3ByPhases), the phase kernels
 * built once per weight value.
 */
function transposedConv3x3Phases(x: tf.Tensor4D, w: tf.Tensor4D, flipWeight: boolean): tf.Tensor4D {
  const kernels = derivedFromWeight(w, `phases|${flipWeight}`, () =>
    phaseKernels3x3(flipWeight ? flipKernel(w) : w),
  ) as tf.Tensor4D[];
  return transposedConv3x3ByPhases(x, kernels);
}
