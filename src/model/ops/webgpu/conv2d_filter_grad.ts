// The convolution filter gradient on webgpu as one implicit-GEMM dispatch (plus a small reduction
// when the reduction is split), reading the NHWC input and output gradient where they lie:
//
//   dw[a,b,i,o] = sum over (n,p,q) of x[n, s*p + a - padTop, s*q + b - padLeft, i] * dy[n,p,q,o]
//
// i.e. a product [M = kh*kw*I rows] x [K = N*P*Q] x [O columns] whose left factor is the im2col
// matrix of x, gathered tile by tile into workgroup memory and never materialised (no pad, no
// transpose, no slice). The output is small and K is huge (every pixel of the batch), so K is split
// across workgroups (split-K): each writes its partial sum of a tile, and a second pass adds the
// partials. tfjs's own webgpu filter gradient is one thread per weight looping over all of K.
//
// Only types come from tfjs-backend-webgpu: loading it before Dawn's globals exist (backend.ts
// does that) would leave it unregistered.
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import type { tf } from '../../tf.ts';

/** Rows (kernel taps x input channels) and columns (output channels) of one workgroup's tile. */
const TILE = 32;
/** Reduction steps staged in workgroup memory per barrier. */
const TILE_K = 32;
/** 8 x 8 threads, each owning 4 x 4 outputs of the 32 x 32 tile (few invocations: lavapipe runs
 * each one in software, and GPUs keep the products in registers). */
const THREADS = 8;
/** Enough workgroups to fill a large GPU; more splits only add partial sums to add up. */
const TARGET_WORKGROUPS = 512;
/** Each split covers at least this much of K, so a split's work outweighs its partial's write. */
const MIN_K_PER_SPLIT = 8 * TILE_K;
/** Upper bound on the partial sums' buffer (floats): 64 MiB. */
const MAX_PARTIAL_FLOATS = 16 * 1024 * 1024;
/** WebGPU's guaranteed maxComputeWorkgroupsPerDimension. */
const MAX_WORKGROUPS_PER_DIMENSION = 65535;

export interface FilterGradGeometry {
  stride: 1 | 2;
  /** [top, bottom, left, right] zero padding of the input. */
  pad: [number, number, number, number];
  kernelHeight: number;
  kernelWidth: number;
}

/** How K is cut across workgroups: `splits` slices of `kPerSplit` (a multiple of TILE_K). */
export function splitK(rows: number, columns: number, k: number): { splits: number; kPerSplit: number } {
  const tiles = Math.ceil(rows / TILE) * Math.ceil(columns / TILE);
  const wanted = Math.ceil(TARGET_WORKGROUPS / tiles);
  const byWork = Math.max(1, Math.floor(k / MIN_K_PER_SPLIT));
  const byMemory = Math.max(1, Math.floor(MAX_PARTIAL_FLOATS / (rows * columns)));
  const splits = Math.max(1, Math.min(wanted, byWork, byMemory, MAX_WORKGROUPS_PER_DIMENSION));
  const kPerSplit = Math.ceil(k / splits / TILE_K) * TILE_K;
  return { splits: Math.ceil(k / kPerSplit), kPerSplit };
}

/** Pass 1: partial sums [splits * kh, kw, I, O] (with one split, the gradient itself). */
class FilterGradPartialsProgram implements WebGPUProgram {
  variableNames = ['x', 'dy'];
  uniforms = 'pad : vec2<i32>, kernelSize : vec2<i32>, stride : i32, kPerSplit : i32,';
  workgroupSize: [number, number, number] = [THREADS, THREADS, 1];
  outputShape: number[];
  dispatchLayout = { x: [3], y: [2], z: [0, 1] };
  dispatch: [number, number, number];
  shaderKey = 'facestyleConv2DFilterGradPartials';

  constructor(rows: number, columns: number, splits: number, g: FilterGradGeometry, inChannels: number) {
    this.outputShape = [splits * g.kernelHeight, g.kernelWidth, inChannels, columns];
    this.dispatch = [Math.ceil(columns / TILE), Math.ceil(rows / TILE), splits];
  }

  getUserCode(): string {
    const loads = (TILE_K * TILE) / (THREADS * THREADS);
    const kPerLoad = (THREADS * THREADS) / TILE;
    const perThread = TILE / THREADS;
    return `
      var<workgroup> tileX : array<f32, ${TILE_K * TILE}>;
      var<workgroup> tileDy : array<f32, ${TILE_K * TILE}>;

      fn main() {
        let inH = uniforms.xShape[1];
        let inW = uniforms.xShape[2];
        let inC = uniforms.xShape[3];
        let outH = uniforms.dyShape[1];
        let outW = uniforms.dyShape[2];
        let outC = uniforms.dyShape[3];
        let rows = uniforms.kernelSize.x * uniforms.kernelSize.y * inC;
        let kTotal = uniforms.dyShape[0] * outH * outW;
        let rowBase = i32(workgroupId.y) * ${TILE};
        let colBase = i32(workgroupId.x) * ${TILE};
        let kBegin = i32(workgroupId.z) * uniforms.kPerSplit;
        let kEnd = min(kBegin + uniforms.kPerSplit, kTotal);
        let lx = i32(localId.x);
        let ly = i32(localId.y);
        let flat = ly * ${THREADS} + lx;
        // Each thread loads one tile row (lane: i fastest, contiguous in x; o in dy) at ${loads}
        // reduction steps; the row's tap (a, b) and channel are worked out once, here.
        let lane = flat % ${TILE};
        let firstK = flat / ${TILE};
        let m = rowBase + lane;
        let i = m % inC;
        let tap = m / inC;
        let tapRow = select(-1000000, tap / uniforms.kernelSize.y - uniforms.pad.x, m < rows);
        let tapCol = tap % uniforms.kernelSize.y - uniforms.pad.y;
        let o = colBase + lane;

        var acc : array<f32, ${perThread * perThread}>;
        // The trip count comes from uniforms only, so the barriers stay in uniform control flow.
        for (var t = 0; t < uniforms.kPerSplit; t = t + ${TILE_K}) {
          for (var e = 0; e < ${loads}; e = e + 1) {
            let kk = firstK + e * ${kPerLoad};
            let k = kBegin + t + kk;
            var xValue = 0.0;
            var dyValue = 0.0;
            if (k < kEnd) {
              // im2col on the fly: reduction index k = (n, p, q).
              let q = k % outW;
              let np = k / outW;
              let p = np % outH;
              let n = np / outH;
              let r = uniforms.stride * p + tapRow;
              let c = uniforms.stride * q + tapCol;
              if (r >= 0 && r < inH && c >= 0 && c < inW) {
                xValue = x[((n * inH + r) * inW + c) * inC + i];
              }
              if (o < outC) {
                dyValue = dy[k * outC + o];
              }
            }
            tileX[kk * ${TILE} + lane] = xValue;
            tileDy[kk * ${TILE} + lane] = dyValue;
          }
          workgroupBarrier();
          for (var j = 0; j < ${TILE_K}; j = j + 1) {
            var xs : array<f32, ${perThread}>;
            var ds : array<f32, ${perThread}>;
            for (var u = 0; u < ${perThread}; u = u + 1) {
              xs[u] = tileX[j * ${TILE} + ly + u * ${THREADS}];
              ds[u] = tileDy[j * ${TILE} + lx + u * ${THREADS}];
            }
            for (var u = 0; u < ${perThread}; u = u + 1) {
              for (var v = 0; v < ${perThread}; v = v + 1) {
                acc[u * ${perThread} + v] = fma(xs[u], ds[v], acc[u * ${perThread} + v]);
              }
            }
          }
          workgroupBarrier();
        }

        let base = i32(workgroupId.z) * rows;
        for (var u = 0; u < ${perThread}; u = u + 1) {
          let row = rowBase + ly + u * ${THREADS};
          for (var v = 0; v < ${perThread}; v = v + 1) {
            let col = colBase + lx + v * ${THREADS};
            if (row < rows && col < outC) { result[(base + row) * outC + col] = acc[u * ${perThread} + v]; }
          }
        }
      }
    `;
  }
}

/** Pass 2: adds the splits' partial sums, one thread per output element (also ./modulate.ts's sums). */
export class SumPartialsProgram implements WebGPUProgram {
  variableNames = ['partials'];
  uniforms = 'splits : i32,';
  workgroupSize: [number, number, number] = [64, 1, 1];
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  size = true;
  shaderKey = 'facestyleConv2DFilterGradSum';

  constructor(filterShape: number[]) {
    this.outputShape = filterShape;
    // Flat: one thread per output element, in index order.
    this.dispatchLayout = { x: filterShape.map((_, axis) => axis) };
    const elements = filterShape.reduce((a, b) => a * b, 1);
    this.dispatch = [Math.ceil(elements / this.workgroupSize[0]), 1, 1];
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          var sum = 0.0;
          for (var s = 0; s < uniforms.splits; s = s + 1) {
            sum = sum + partials[s * uniforms.size + index];
          }
          setOutputAtIndex(index, sum);
        }
      }
    `;
  }
}

/**
 * dw [kh,kw,I,O] of a correlation of x [N,H,W,I] (explicitly zero-padded) producing dy [N,P,Q,O],
 * on the webgpu backend. `x` and `dy` are float32 tensors of that backend.
 */
export function conv2dFilterGradWebGPU(
  backend: WebGPUBackend,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  g: FilterGradGeometry,
): tf.TensorInfo {
  const [n, , , inChannels] = x.shape;
  const [dn, outH, outW, outChannels] = dy.shape;
  if (x.dtype !== 'float32' || dy.dtype !== 'float32' || n !== dn) {
    throw new Error(
      `conv2dFilterGradWebGPU: float32 x [${x.shape}] and dy [${dy.shape}] of one batch expected`,
    );
  }
  const rows = g.kernelHeight * g.kernelWidth * inChannels;
  const { splits, kPerSplit } = splitK(rows, outChannels, n * outH * outW);
  const partials = backend.runWebGPUProgram(
    new FilterGradPartialsProgram(rows, outChannels, splits, g, inChannels),
    [x, dy],
    'float32',
    [
      { type: 'int32', data: [g.pad[0], g.pad[2]] },
      { type: 'int32', data: [g.kernelHeight, g.kernelWidth] },
      { type: 'int32', data: [g.stride] },
      { type: 'int32', data: [kPerSplit] },
    ],
  );
  if (splits === 1) return partials;
  const filterShape = [g.kernelHeight, g.kernelWidth, inChannels, outChannels];
  const summed = backend.runWebGPUProgram(new SumPartialsProgram(filterShape), [partials], 'float32', [
    { type: 'int32', data: [splits] },
  ]);
  backend.disposeData(partials.dataId);
  return summed;
}
