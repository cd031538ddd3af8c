// A 2D convolution whose gradients exist on every backend and differentiate again, to any order.
//
// Three linear kernels close the set under differentiation:
//   conv          y  = corr(x, w)            (native forward convolution)
//   backpropInput dx = corr^T(dy, w)         (the adjoint in x: native transposed/flipped convolution)
//   backpropFilter dw = sum x_patch^T dy     (one batched matMul per kernel tap)
// and the gradient of each is expressed through the others, so R1 (grad of D in its input, then in
// its weights) and path length (grad of G in w, then in its weights) work on wasm, which has no
// Conv2DBackpropFilter kernel, and keep webgpu off its slow native filter gradient.
//
// They are registered as kernels rather than tf.customGrad: a kernel's gradient is one closure per
// input, and tfjs only calls those on the path to the variables, so the R1 pass does not pay for
// filter gradients and the G pass through D does not pay for D's.
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { tf } from '../../tf.ts';
import {
  type ConvOps,
  interleaveColumns,
  interleaveRows,
  phaseKernels3x3,
  type SpatialPadding,
  transposedConv3x3ByPhases,
} from '../conv.ts';
import { conv2dFilterGradWebGPU } from '../webgpu/conv2d_filter_grad.ts';

const CONV = 'FacestyleConv2D';
const BACKPROP_INPUT = 'FacestyleConv2DBackpropInput';
const BACKPROP_FILTER = 'FacestyleConv2DBackpropFilter';

/** Stride and explicit zero padding of one convolution, as kernel attributes. */
interface Geometry {
  stride: 1 | 2;
  /** [top, bottom, left, right], each >= 0. */
  pad: [number, number, number, number];
}

// GPU backends parallelise a matMul over its output tiles only; the filter gradient's output is
// tiny (I x O) and its reduction huge (every pixel of the batch), so there it runs as one product
// per sample, summed. CPU backends do better with the single product.
const PER_SAMPLE_FILTER_GRAD_BACKENDS = new Set(['webgpu', 'webgl']);
/**
 * Backends whose transposed convolution and strided slice are plain loops (27 and 12 ms a call
 * in a 64x64 demo training step on wasm, the two largest kernel times) and whose forward
 * convolution is the fast kernel: conv gradients there go through forward convolutions.
 */
const LOOP_KERNEL_BACKENDS = new Set(['wasm', 'cpu']);
/** Conv gradients as forward convolutions (FACESTYLE_CONV_GRAD=taps: the former path, for benches). */
function gradientsByForwardConv(): boolean {
  return LOOP_KERNEL_BACKENDS.has(tf.getBackend()) && process.env.FACESTYLE_CONV_GRAD !== 'taps';
}

function geometryOf(attrs: tf.NamedAttrMap): Geometry {
  return { stride: attrs.stride as 1 | 2, pad: attrs.pad as Geometry['pad'] };
}

function geometryAttrs(g: Geometry): tf.NamedAttrMap {
  return { stride: g.stride, pad: [...g.pad] };
}

/** tf.conv2d's explicit padding: [[0,0],[top,bottom],[left,right],[0,0]]. */
type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];

function explicitPadding(g: Geometry): ExplicitPadding {
  const [top, bottom, left, right] = g.pad;
  return [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
}

/** Output length of a correlation along one axis. */
function outputLength(input: number, before: number, after: number, kernel: number, stride: number): number {
  return Math.floor((input + before + after - kernel) / stride) + 1;
}

function convForward(x: tf.Tensor4D, w: tf.Tensor4D, g: Geometry): tf.Tensor4D {
  return tf.conv2d(x, w, g.stride, explicitPadding(g));
}

/** Adjoint of convForward in x: dy [N,P,Q,O], w [kh,kw,I,O] -> [N,H,W,I]. */
function backpropInputForward(dy: tf.Tensor4D, w: tf.Tensor4D, g: Geometry, inH: number, inW: number) {
  const [kh, kw, inChannels] = w.shape;
  const [top, bottom, left, right] = g.pad;
  const flippable = top < kh && bottom < kh && left < kw && right < kw;
  if (tf.getBackend() === 'webgpu') {
    // webgpu's own transposed convolution takes the padding and the HWIO kernel as they are: one
    // program, where the flipped-kernel form below needs a reverse and a transpose of w first.
    return tf.conv2dTranspose(dy, w, [dy.shape[0], inH, inW, inChannels], g.stride, explicitPadding(g));
  }
  if (g.stride === 1 && flippable) {
    // A stride-1 adjoint is a forward convolution with the kernel flipped and its channels swapped,
    // and the forward convolution is the fastest kernel every backend has.
    const flipped = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
    return tf.conv2d(dy, flipped, 1, [
      [0, 0],
      [kh - 1 - top, kh - 1 - bottom],
      [kw - 1 - left, kw - 1 - right],
      [0, 0],
    ]);
  }
  const n = dy.shape[0];
  if (g.stride === 2 && gradientsByForwardConv() && kh === kw && (kh === 3 || kh === 1)) {
    // dx[2i + a] += dy[i] w[a]^T onto the padded input, by output phase on the forward kernel;
    // the phases cover at least the padded input (its size is 2P+1 or 2P+2 at 3x3, 2P-1 or 2P at
    // 1x1), so one slice cuts the padding and any extra zero row or column.
    const wT = tf.transpose(w, [0, 1, 3, 2]) as tf.Tensor4D;
    let full: tf.Tensor4D;
    if (kh === 3) {
      full = transposedConv3x3ByPhases(dy, phaseKernels3x3(wT), (a, b, stride, pad) =>
        tf.conv2d(a, b, stride, [[0, 0], ...pad, [0, 0]]),
      );
    } else {
      const even = tf.conv2d(dy, wT, 1, 'valid');
      const rows = interleaveColumns(even, tf.zerosLike(even));
      full = interleaveRows(rows, tf.zerosLike(rows));
    }
    return tf.slice(full, [0, top, left, 0], [n, inH, inW, inChannels]);
  }
  // Transposed convolution onto the padded input, then the padding cut away. Rows of the padded
  // input that a stride skips receive zeros, as they should.
  const paddedH = inH + top + bottom;
  const paddedW = inW + left + right;
  const full = tf.conv2dTranspose(dy, w, [n, paddedH, paddedW, inChannels], g.stride, 'valid');
  // Unpadded (the up-convs' transposed convs, the down-convs after their FIR): nothing to cut, and
  // a slice of the whole tensor would still be a copy on GPU backends.
  if (top === 0 && bottom === 0 && left === 0 && right === 0) return full;
  return tf.slice(full, [0, top, left, 0], [n, inH, inW, inChannels]);
}

/**
 * Gradient in w of convForward as a composite of tfjs ops (the filter-gradient kernel of backends
 * other than webgpu, which runs one implicit-GEMM program, and wasm and cpu, which run
 * backpropFilterByConv): x [N,H,W,I], dy [N,P,Q,O] -> [kh,kw,I,O], one matMul per tap
 * (a, b) between the input pixels that tap multiplied and dy. x is transposed once, channels
 * first, so that each tap's pixels come out as the left factor [I, pixels] and no product needs
 * transposeA (several times slower than an explicit transpose on wasm). Only one tap's pixels are
 * alive at a time: an im2col matrix would hold kh*kw copies of x.
 */
function backpropFilterComposite(x: tf.Tensor4D, dy: tf.Tensor4D, g: Geometry, kh: number, kw: number) {
  const [n, , , inChannels] = x.shape;
  const [, outH, outW, outChannels] = dy.shape;
  const s = g.stride;
  const perSample = PER_SAMPLE_FILTER_GRAD_BACKENDS.has(tf.getBackend());
  // [I, N, Hp, Wp], or [N, I, Hp, Wp] for per-sample products.
  const channelsFirst = tf.transpose(tf.pad(x, explicitPadding(g)), perSample ? [0, 3, 1, 2] : [3, 0, 1, 2]);
  const [d0, d1] = channelsFirst.shape;
  const pixels = perSample ? outH * outW : n * outH * outW;
  const right = perSample
    ? (tf.reshape(dy, [n, pixels, outChannels]) as tf.Tensor3D)
    : (tf.reshape(dy, [pixels, outChannels]) as tf.Tensor2D);
  const taps: tf.Tensor2D[] = [];
  for (let a = 0; a < kh; a++) {
    for (let b = 0; b < kw; b++) {
      // Rows a, a+s, ..., columns b, b+s, ... of the padded input.
      const patch =
        s === 1
          ? tf.slice(channelsFirst, [0, 0, a, b], [d0, d1, outH, outW])
          : tf.stridedSlice(
              channelsFirst,
              [0, 0, a, b],
              [d0, d1, a + s * (outH - 1) + 1, b + s * (outW - 1) + 1],
              [1, 1, s, s],
            );
      let tap: tf.Tensor2D;
      if (perSample) {
        const product = tf.matMul(
          tf.reshape(patch, [n, inChannels, pixels]) as tf.Tensor3D,
          right as tf.Tensor3D,
        );
        tap = tf.sum(product, 0) as tf.Tensor2D;
        product.dispose();
      } else {
        tap = tf.matMul(tf.reshape(patch, [inChannels, pixels]) as tf.Tensor2D, right as tf.Tensor2D);
      }
      taps.push(tap);
      patch.dispose();
    }
  }
  return tf.reshape(tf.stack(taps), [kh, kw, inChannels, outChannels]) as tf.Tensor4D;
}

/**
 * The filter gradient as one forward convolution: dw[a, b, i, o] = sum over n, p, q of
 * x[n, s p + a, s q + b, i] dy[n, p, q, o] is a convolution of the padded input with the channels
 * as the batch and the batch as the channels ([I, Hp, Wp, N]) by dy as the kernel ([P, Q, N, O],
 * dilated by the stride), whose [I, kh, kw, O] output is dw up to a transpose. On wasm that is
 * XNNPACK's convolution instead of kh x kw slices and products (1.3x a whole 64x64 training step).
 */
function backpropFilterByConv(x: tf.Tensor4D, dy: tf.Tensor4D, g: Geometry, kh: number, kw: number) {
  const inChannels = x.shape[3];
  const outChannels = dy.shape[3];
  const images = tf.transpose(tf.pad(x, explicitPadding(g)), [3, 1, 2, 0]) as tf.Tensor4D;
  const kernel = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
  // A padded size the stride does not divide leaves rows no tap reaches: cut them.
  const full = tf.conv2d(images, kernel, 1, 'valid', 'NHWC', g.stride);
  const taps = tf.slice(full, [0, 0, 0, 0], [inChannels, kh, kw, outChannels]);
  return tf.transpose(taps, [1, 2, 0, 3]) as tf.Tensor4D;
}

function runConv(x: tf.Tensor4D, w: tf.Tensor4D, g: Geometry): tf.Tensor4D {
  ensureRegistered();
  return tf.engine().runKernel(CONV, { x, w }, geometryAttrs(g)) as tf.Tensor4D;
}

function runBackpropInput(
  dy: tf.Tensor4D,
  w: tf.Tensor4D,
  g: Geometry,
  inH: number,
  inW: number,
): tf.Tensor4D {
  ensureRegistered();
  return tf.engine().runKernel(BACKPROP_INPUT, { dy, w }, { ...geometryAttrs(g), inH, inW }) as tf.Tensor4D;
}

function runBackpropFilter(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  g: Geometry,
  kh: number,
  kw: number,
): tf.Tensor4D {
  ensureRegistered();
  return tf.engine().runKernel(BACKPROP_FILTER, { x, dy }, { ...geometryAttrs(g), kh, kw }) as tf.Tensor4D;
}

// The kernels are composites of tfjs ops, so one implementation serves every backend. A kernel
// function may return a Tensor (the engine keeps it as the output); tidy frees the intermediates.
function compositeKernel(
  kernelName: string,
  backendName: string,
  body: (args: KernelArgs) => tf.Tensor,
): void {
  if (tf.getKernel(kernelName, backendName)) return;
  tf.registerKernel({
    kernelName,
    backendName,
    kernelFunc: ({ inputs, attrs }) =>
      tf.tidy(() => body({ inputs: inputs as Record<string, tf.Tensor4D>, attrs: attrs ?? {} })),
  });
}

interface KernelArgs {
  inputs: Record<string, tf.Tensor4D>;
  attrs: tf.NamedAttrMap;
}

function registerGradients(): void {
  if (tf.getGradient(CONV)) return;
  tf.registerGradient({
    kernelName: CONV,
    inputsToSave: ['x', 'w'],
    gradFunc: (dy, saved, attrs) => {
      const [x, w] = saved as tf.Tensor4D[];
      const g = geometryOf(attrs as tf.NamedAttrMap);
      const d = dy as tf.Tensor4D;
      return {
        x: () => runBackpropInput(d, w, g, x.shape[1], x.shape[2]),
        w: () => runBackpropFilter(x, d, g, w.shape[0], w.shape[1]),
      };
    },
  });
  tf.registerGradient({
    kernelName: BACKPROP_INPUT,
    inputsToSave: ['dy', 'w'],
    gradFunc: (ddx, saved, attrs) => {
      const [dy, w] = saved as tf.Tensor4D[];
      const g = geometryOf(attrs as tf.NamedAttrMap);
      const upstream = ddx as tf.Tensor4D;
      return {
        dy: () => runConv(upstream, w, g),
        w: () => runBackpropFilter(upstream, dy, g, w.shape[0], w.shape[1]),
      };
    },
  });
  tf.registerGradient({
    kernelName: BACKPROP_FILTER,
    inputsToSave: ['x', 'dy'],
    gradFunc: (ddw, saved, attrs) => {
      const [x, dy] = saved as tf.Tensor4D[];
      const g = geometryOf(attrs as tf.NamedAttrMap);
      const upstream = ddw as tf.Tensor4D;
      return {
        x: () => runBackpropInput(dy, upstream, g, x.shape[1], x.shape[2]),
        dy: () => runConv(x, upstream, g),
      };
    },
  });
}

// Its gradients (registered above, backend-independent) are built from the other two kernels, so
// second-order paths (R1, path length) differentiate through it like through the composite.
function registerWebGPUFilterGradient(): void {
  if (tf.getKernel(BACKPROP_FILTER, 'webgpu')) return;
  tf.registerKernel({
    kernelName: BACKPROP_FILTER,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const g = geometryOf(attrs ?? {});
      return conv2dFilterGradWebGPU(
        backend as WebGPUBackend,
        inputs.x as tf.TensorInfo,
        inputs.dy as tf.TensorInfo,
        {
          stride: g.stride,
          pad: g.pad,
          kernelHeight: attrs?.kh as number,
          kernelWidth: attrs?.kw as number,
        },
      );
    },
  });
}

function ensureRegistered(): void {
  const backendName = tf.getBackend();
  compositeKernel(CONV, backendName, ({ inputs, attrs }) =>
    convForward(inputs.x, inputs.w, geometryOf(attrs)),
  );
  compositeKernel(BACKPROP_INPUT, backendName, ({ inputs, attrs }) =>
    backpropInputForward(inputs.dy, inputs.w, geometryOf(attrs), attrs.inH as number, attrs.inW as number),
  );
  if (backendName === 'webgpu') registerWebGPUFilterGradient();
  else {
    compositeKernel(BACKPROP_FILTER, backendName, ({ inputs, attrs }) =>
      (gradientsByForwardConv() ? backpropFilterByConv : backpropFilterComposite)(
        inputs.x,
        inputs.dy,
        geometryOf(attrs),
        attrs.kh as number,
        attrs.kw as number,
      ),
    );
  }
  registerGradients();
}

function geometry(stride: 1 | 2, pad: SpatialPadding): Geometry {
  const flat: Geometry['pad'] = [pad[0][0], pad[0][1], pad[1][0], pad[1][1]];
  if (stride !== 1 && stride !== 2) throw new RangeError(`conv2d: stride must be 1 or 2, got ${stride}`);
  if (flat.some((p) => !Number.isInteger(p) || p < 0)) {
    throw new RangeError(`conv2d: padding must be non-negative integers, got ${JSON.stringify(pad)}`);
  }
  return { stride, pad: flat };
}

function assertChannels(x: tf.Tensor4D, w: tf.Tensor4D, what: string): void {
  if (x.rank !== 4 || w.rank !== 4 || x.shape[3] !== w.shape[2]) {
    throw new Error(`${what}: input [${x.shape}] does not match the HWIO kernel [${w.shape}]`);
  }
}

/**
 * Correlation of NHWC `x` with the HWIO kernel `w` (as tf.conv2d with explicit padding), with
 * gradients in both arguments on every backend, differentiable to any order.
 */
export function conv2dDifferentiable(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  stride: 1 | 2,
  pad: SpatialPadding,
): tf.Tensor4D {
  assertChannels(x, w, 'conv2dDifferentiable');
  const g = geometry(stride, pad);
  const [, h, wd] = x.shape;
  const [kh, kw] = w.shape;
  if (
    outputLength(h, g.pad[0], g.pad[1], kh, stride) < 1 ||
    outputLength(wd, g.pad[2], g.pad[3], kw, stride) < 1
  ) {
    throw new Error(`conv2dDifferentiable: kernel [${w.shape}] larger than the padded input [${x.shape}]`);
  }
  return runConv(x, w, g);
}

/**
 * The adjoint of conv2dDifferentiable in its input: dy [N,P,Q,O] -> [N,inH,inW,I] for the kernel
 * w [kh,kw,I,O], i.e. a transposed convolution, differentiable to any order.
 */
export function conv2dBackpropInputDifferentiable(
  dy: tf.Tensor4D,
  w: tf.Tensor4D,
  stride: 1 | 2,
  pad: SpatialPadding,
  inputSize: [number, number],
): tf.Tensor4D {
  const g = geometry(stride, pad);
  const [kh, kw, , outChannels] = w.shape;
  const [inH, inW] = inputSize;
  const expected = [
    outputLength(inH, g.pad[0], g.pad[1], kh, stride),
    outputLength(inW, g.pad[2], g.pad[3], kw, stride),
  ];
  if (
    dy.rank !== 4 ||
    dy.shape[1] !== expected[0] ||
    dy.shape[2] !== expected[1] ||
    dy.shape[3] !== outChannels
  ) {
    throw new Error(
      `conv2dBackpropInputDifferentiable: dy [${dy.shape}] is not the output of a [${inH},${inW}] input with kernel [${w.shape}]`,
    );
  }
  return runBackpropInput(dy, w, g, inH, inW);
}

/** The gradient of conv2dDifferentiable in its kernel: x [N,H,W,I], dy [N,P,Q,O] -> [kh,kw,I,O]. */
export function conv2dBackpropFilterDifferentiable(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  stride: 1 | 2,
  pad: SpatialPadding,
  kernelSize: [number, number],
): tf.Tensor4D {
  const g = geometry(stride, pad);
  const [kh, kw] = kernelSize;
  const [n, h, wd] = x.shape;
  const expected = [
    n,
    outputLength(h, g.pad[0], g.pad[1], kh, stride),
    outputLength(wd, g.pad[2], g.pad[3], kw, stride),
  ];
  if (dy.rank !== 4 || expected.some((e, i) => dy.shape[i] !== e)) {
    throw new Error(
      `conv2dBackpropFilterDifferentiable: dy [${dy.shape}] is not the output of input [${x.shape}] with a ${kh}x${kw} kernel`,
    );
  }
  return runBackpropFilter(x, dy, g, kh, kw);
}

/**
 * The per-tap composite filter gradient (pad, transpose, a product per tap; the kernel of backends
 * other than webgpu, wasm and cpu), callable on any backend: the reference the webgpu program is
 * tested and benchmarked against.
 * Not differentiable; same arguments as conv2dBackpropFilterDifferentiable.
 */
export function conv2dBackpropFilterComposite(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  stride: 1 | 2,
  pad: SpatialPadding,
  kernelSize: [number, number],
): tf.Tensor4D {
  return tf.tidy(() => backpropFilterComposite(x, dy, geometry(stride, pad), kernelSize[0], kernelSize[1]));
}

/**
 * The input gradient's forward computation as a plain function (webgpu: tfjs's transposed conv with
 * the padding as given; elsewhere at stride 1 a forward conv with the flipped kernel): the tests'
 * cpu reference. Not differentiable; arguments as conv2dBackpropInputDifferentiable.
 */
export function conv2dBackpropInputComposite(
  dy: tf.Tensor4D,
  w: tf.Tensor4D,
  stride: 1 | 2,
  pad: SpatialPadding,
  inputSize: [number, number],
): tf.Tensor4D {
  return tf.tidy(() => backpropInputForward(dy, w, geometry(stride, pad), inputSize[0], inputSize[1]));
}

/**
 * The lead's ConvOps for training: conv2d as above; conv2dTranspose (w [kh,kw,I,O] spreading each
 * input pixel, stride 2, no padding) as the adjoint of a correlation with the channel-swapped kernel.
 */
export const differentiableConvOps: ConvOps = {
  conv2d: conv2dDifferentiable,
  conv2dTranspose: (x, w, stride) => {
    const [, h, wd] = x.shape;
    const [kh, kw] = w.shape;
    assertChannels(x, w, 'conv2dTranspose');
    const swapped = tf.transpose(w, [0, 1, 3, 2]) as tf.Tensor4D;
    const noPad: SpatialPadding = [
      [0, 0],
      [0, 0],
    ];
    return conv2dBackpropInputDifferentiable(x, swapped, stride, noPad, [
      stride * (h - 1) + kh,
      stride * (wd - 1) + kw,
    ]);
  },
};
