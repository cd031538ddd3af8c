// The style modulation and the per-channel sums its gradients (and the epilogue's) need, as webgpu
// programs:
//
//   FacestyleModulate     out[n, p, c] = x[n, p, c] * s[n or 0, c]          (x * styles)
//   FacestyleChannelSum   out[n or 0, c] = sum over p (and n) of a[n, p, c] (* b[n, p, c])
//
// p runs over the pixels of NHWC activations (everything between the first and last axis). Stock
// tfjs runs the styles' gradient as a multiply and a sum whose axes are not the innermost, i.e. a
// transpose and a reduction; a bias gradient as the transpose and the reduction. Here each is one
// dispatch. The two kernels are each other's gradients (the product's factors come back as
// modulations by the upstream gradient), so the set differentiates to any order.
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { tf } from '../../tf.ts';
import { SumPartialsProgram } from './conv2d_filter_grad.ts';
import type { KernelArgs } from './kernel-args.ts';

const MODULATE = 'FacestyleModulate';
const CHANNEL_SUM = 'FacestyleChannelSum';
const WORKGROUP = 64;
/** Channels per ChannelSum workgroup, and lanes splitting its pixels. */
const TILE_C = 16;
const LANES = 16;
/** Enough workgroups to fill a large GPU: fewer outputs than this split their sums (split-K). */
const TARGET_WORKGROUPS = 256;
/** Each split adds up at least this many rows (256 per lane), so it outweighs its partial's write. */
const MIN_ROWS_PER_SPLIT = 16 * 256;
/** WebGPU's guaranteed maxComputeWorkgroupsPerDimension. */
const MAX_WORKGROUPS_PER_DIMENSION = 65535;

/**
 * How the `length` rows summed into each output are cut across workgroups: `splits` ranges of
 * `perSplit` rows. One split (one dispatch) unless the outputs alone give a large GPU too few
 * workgroups and the sums are long: a bias gradient at 256x256 would otherwise run in 4 workgroups.
 */
export function channelSumSplits(outRows: number, channels: number, length: number) {
  const workgroups = outRows * Math.ceil(channels / TILE_C);
  const wanted = Math.ceil(TARGET_WORKGROUPS / workgroups);
  const byWork = Math.max(1, Math.floor(length / MIN_ROWS_PER_SPLIT));
  const splits = Math.max(1, Math.min(wanted, byWork, MAX_WORKGROUPS_PER_DIMENSION));
  const perSplit = Math.ceil(length / splits);
  return { splits: Math.ceil(length / perSplit), perSplit };
}

/** [n, p, c]: the batch, the pixels between, the channels (at least rank 2). */
function dims(shape: number[]): [number, number, number] {
  if (shape.length < 2) throw new Error(`modulate: rank >= 2 expected, got [${shape}]`);
  const n = shape[0];
  const c = shape[shape.length - 1];
  return [n, shape.slice(1, -1).reduce((a, b) => a * b, 1), c];
}

class ModulateProgram implements WebGPUProgram {
  readonly variableNames = ['modX', 'modS'];
  readonly outputShape: number[];
  readonly shaderKey = 'facestyle_modulate';
  readonly dispatchLayout: { x: number[] };
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  readonly size = true;
  readonly uniforms = 'channels : i32, perSample : i32, styleRows : i32,';

  constructor(shape: number[]) {
    this.outputShape = shape;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = [Math.ceil(shape.reduce((a, b) => a * b, 1) / WORKGROUP), 1, 1];
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let c = index % uniforms.channels;
          let n = min(index / uniforms.perSample, uniforms.styleRows - 1);
          setOutputAtIndex(index, modX[index] * modS[n * uniforms.channels + c]);
        }
      }`;
  }
}

/**
 * One workgroup per (output row, 16 channels, split); 16 lanes stride over the split's rows (pixels,
 * and samples for a sum over the batch: both are contiguous), then add up in workgroup memory. The
 * channel is the fastest index: neighbouring threads read neighbouring floats. With several splits
 * the output is [splits, rows, C] partial sums, added by a second pass.
 */
class ChannelSumProgram implements WebGPUProgram {
  readonly variableNames: string[];
  readonly outputShape: number[];
  readonly shaderKey: string;
  readonly dispatchLayout = { x: [1], y: [0] };
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [TILE_C, LANES, 1];
  readonly uniforms = 'channels : i32, length : i32, perSplit : i32,';

  constructor(
    rows: number,
    channels: number,
    splits: number,
    private readonly product: boolean,
  ) {
    this.outputShape = [splits * rows, channels];
    this.variableNames = product ? ['sumA', 'sumB'] : ['sumA'];
    this.dispatch = [Math.ceil(channels / TILE_C), rows, splits];
    this.shaderKey = `facestyle_channel_sum_${product}`;
  }

  getUserCode(): string {
    const term = this.product ? 'sumA[i] * sumB[i]' : 'sumA[i]';
    return `
      var<workgroup> partial : array<f32, ${TILE_C * LANES}>;

      fn main() {
        let lx = i32(localId.x);
        let lane = i32(localId.y);
        let c = i32(workgroupId.x) * ${TILE_C} + lx;
        let row = i32(workgroupId.y);
        let split = i32(workgroupId.z);
        let rowsOut = i32(numWorkgroups.y);
        // This output row's rows are [row * length, (row + 1) * length); this split's, a range of them.
        let begin = row * uniforms.length + split * uniforms.perSplit;
        let end = row * uniforms.length + min((split + 1) * uniforms.perSplit, uniforms.length);
        var acc = 0.0;
        if (c < uniforms.channels) {
          for (var r = begin + lane; r < end; r = r + ${LANES}) {
            let i = r * uniforms.channels + c;
            acc = acc + ${term};
          }
        }
        partial[lane * ${TILE_C} + lx] = acc;
        workgroupBarrier();
        for (var half = ${LANES / 2}; half > 0; half = half / 2) {
          if (lane < half) {
            partial[lane * ${TILE_C} + lx] = partial[lane * ${TILE_C} + lx] + partial[(lane + half) * ${TILE_C} + lx];
          }
          workgroupBarrier();
        }
        if (lane == 0 && c < uniforms.channels) {
          result[(split * rowsOut + row) * uniforms.channels + c] = partial[lx];
        }
      }`;
  }
}

function runModulate({ inputs, backend }: KernelArgs) {
  const x = inputs.x as tf.TensorInfo;
  const s = inputs.s as tf.TensorInfo;
  const [, p, c] = dims(x.shape);
  return (backend as WebGPUBackend).runWebGPUProgram(new ModulateProgram(x.shape), [x, s], 'float32', [
    { type: 'int32', data: [c] },
    { type: 'int32', data: [p * c] },
    { type: 'int32', data: [s.shape[0]] },
  ]) as unknown as tf.TensorInfo;
}

function runChannelSum({ inputs, attrs, backend }: KernelArgs) {
  const a = inputs.a as tf.TensorInfo;
  const [n, p, c] = dims(a.shape);
  const overBatch = attrs?.overBatch === true;
  const ordered = inputs.b ? [a, inputs.b as tf.TensorInfo] : [a];
  const rows = overBatch ? 1 : n;
  const length = overBatch ? n * p : p;
  const { splits, perSplit } = channelSumSplits(rows, c, length);
  const webgpu = backend as WebGPUBackend;
  const partials = webgpu.runWebGPUProgram(
    new ChannelSumProgram(rows, c, splits, ordered.length === 2),
    ordered,
    'float32',
    [
      { type: 'int32', data: [c] },
      { type: 'int32', data: [length] },
      { type: 'int32', data: [perSplit] },
    ],
  );
  if (splits === 1) return partials as unknown as tf.TensorInfo;
  const summed = webgpu.runWebGPUProgram(new SumPartialsProgram([rows, c]), [partials], 'float32', [
    { type: 'int32', data: [splits] },
  ]);
  webgpu.disposeData(partials.dataId);
  return summed as unknown as tf.TensorInfo;
}

/** g [rows, C] spread over `shape` ([N, ..., C]): every pixel (and sample, for one row) gets its row. */
function spread(g: tf.Tensor, shape: number[]): tf.Tensor {
  const [n, p, c] = dims(shape);
  const rows = g.shape[0];
  // A broadcast add (its gradient is one sum) rather than tile (a slice and an add per copy).
  const copies = tf.add(tf.reshape(g, [rows, 1, c]), tf.zeros([rows === n ? 1 : n, p, 1]));
  return tf.reshape(copies, shape);
}

function register(): void {
  if (!tf.getKernel(MODULATE, 'webgpu')) {
    tf.registerKernel({
      kernelName: MODULATE,
      backendName: 'webgpu',
      kernelFunc: runModulate as tf.KernelFunc,
    });
    for (const name of [CHANNEL_SUM, `${CHANNEL_SUM}_b`]) {
      tf.registerKernel({
        kernelName: name,
        backendName: 'webgpu',
        kernelFunc: runChannelSum as tf.KernelFunc,
      });
    }
  }
  if (tf.getGradient(MODULATE)) return;
  tf.registerGradient({
    kernelName: MODULATE,
    inputsToSave: ['x', 's'],
    gradFunc: (dy, saved) => {
      const [x, s] = saved;
      const g = dy as tf.Tensor;
      return {
        x: () => modulate(g, s),
        s: () => channelSum(g, x, s.shape[0] === 1 && x.shape[0] > 1),
      };
    },
  });
  tf.registerGradient({
    kernelName: CHANNEL_SUM,
    inputsToSave: ['a'],
    gradFunc: (dy, saved) => ({ a: () => spread(dy as tf.Tensor, saved[0].shape) }),
  });
  tf.registerGradient({
    kernelName: `${CHANNEL_SUM}_b`,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved) => {
      const [a, b] = saved;
      const g = dy as tf.Tensor;
      return { a: () => modulate(b, g), b: () => modulate(a, g) };
    },
  });
}

/**
 * x [N, ..., C] times s [N or 1, C] per sample and channel (the styles' modulation of a conv input),
 * one webgpu dispatch, differentiable to any order. webgpu only.
 */
export function modulate<T extends tf.Tensor>(x: T, s: tf.Tensor): T {
  const [n, , c] = dims(x.shape);
  if (s.rank !== 2 || s.shape[1] !== c || (s.shape[0] !== n && s.shape[0] !== 1)) {
    throw new Error(`modulate: styles [${s.shape}] do not fit x [${x.shape}]`);
  }
  register();
  return tf.engine().runKernel(MODULATE, { x, s }) as T;
}

/**
 * sum over the pixels of a (times b, same shape) per sample and channel: [N, C], or with
 * `overBatch` over the samples too: [1, C]. One webgpu dispatch, differentiable to any order.
 */
export function channelSum(a: tf.Tensor, b: tf.Tensor | null, overBatch: boolean): tf.Tensor2D {
  dims(a.shape);
  if (b && !tf.util.arraysEqual(a.shape, b.shape)) {
    throw new Error(`channelSum: [${a.shape}] and [${b.shape}] differ`);
  }
  register();
  const name = b ? `${CHANNEL_SUM}_b` : CHANNEL_SUM;
  const inputs: tf.NamedTensorMap = b ? { a, b } : { a };
  return tf.engine().runKernel(name, inputs, { overBatch }) as tf.Tensor2D;
}
