// The stride-1 convolution input gradient on webgpu as one implicit-GEMM program that reads the
// HWIO kernel in place, flipped and with its channels swapped by indexing:
//
//   dx[n,h,w,i] = sum over (a,b,o) of dy[n, h + padTop - a, w + padLeft - b, o] * w[a,b,i,o]
//
// a product [N*H*W pixels] x [K = kh*kw*O] x [I]. The composite it replaces runs a reverse and a
// transpose of the kernel before tfjs's forward convolution (three programs per call). Stride 2
// keeps tfjs's transposed convolution (see docs/benchmarks.md, "conv gradients on webgpu"): a
// GEMM over every tap would do 4x the multiply-adds there.
//
// Only types come from tfjs-backend-webgpu (see conv2d_filter_grad.ts).
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import type { tf } from '../../tf.ts';

const TILE = 32;
const TILE_K = 32;
/** 8 x 8 threads, each owning 4 x 4 outputs of the 32 x 32 tile (few invocations: lavapipe runs
 * each one in software, and GPUs keep the products in registers). */
const THREADS = 8;
/** Row tiles per dispatch row; more go to the z dimension (65535 workgroups per dimension at most). */
const MAX_ROW_TILES_Y = 32768;

class InputGradProgram implements WebGPUProgram {
  variableNames = ['dy', 'w'];
  uniforms = 'pad : vec2<i32>,';
  workgroupSize: [number, number, number] = [THREADS, THREADS, 1];
  outputShape: number[];
  dispatchLayout = { x: [3], y: [1, 2], z: [0] };
  dispatch: [number, number, number];
  shaderKey = 'facestyleConv2DInputGrad';

  constructor(inShape: number[]) {
    this.outputShape = inShape;
    const [n, h, w, inChannels] = inShape;
    const rowTiles = Math.ceil((n * h * w) / TILE);
    this.dispatch = [
      Math.ceil(inChannels / TILE),
      Math.min(rowTiles, MAX_ROW_TILES_Y),
      Math.ceil(rowTiles / MAX_ROW_TILES_Y),
    ];
  }

  getUserCode(): string {
    const loads = (TILE_K * TILE) / (THREADS * THREADS);
    const rowsPerLoad = (THREADS * THREADS) / TILE_K;
    const perThread = TILE / THREADS;
    return `
      var<workgroup> tileDy : array<f32, ${TILE_K * TILE}>;
      var<workgroup> tileW : array<f32, ${TILE_K * TILE}>;

      fn main() {
        let inH = uniforms.outShape[1];
        let inW = uniforms.outShape[2];
        let inC = uniforms.outShape[3];
        let outH = uniforms.dyShape[1];
        let outW = uniforms.dyShape[2];
        let outC = uniforms.dyShape[3];
        let kw = uniforms.wShape[1];
        let rows = uniforms.outShape[0] * inH * inW;
        let kTotal = uniforms.wShape[0] * kw * outC;
        let rowBase = (i32(workgroupId.z) * ${MAX_ROW_TILES_Y} + i32(workgroupId.y)) * ${TILE};
        let colBase = i32(workgroupId.x) * ${TILE};
        let lx = i32(localId.x);
        let ly = i32(localId.y);
        let flat = ly * ${THREADS} + lx;
        // Each thread loads one reduction column kk (o fastest: contiguous in dy and w) of
        // ${loads} tile rows; where those rows start in dy is worked out once, here.
        let kk = flat % ${TILE_K};
        let firstLane = flat / ${TILE_K};
        var dyRowStart : array<i32, ${loads}>;
        var rowH : array<i32, ${loads}>;
        var rowW : array<i32, ${loads}>;
        for (var e = 0; e < ${loads}; e = e + 1) {
          let r = rowBase + firstLane + e * ${rowsPerLoad};
          let c = r % inW;
          let nh = r / inW;
          let h = nh % inH;
          let n = nh / inH;
          // Rows past the end read nothing: an out-of-range row position.
          rowH[e] = select(-1000000, h + uniforms.pad.x, r < rows);
          rowW[e] = c + uniforms.pad.y;
          dyRowStart[e] = n * outH;
        }

        var acc : array<f32, ${perThread * perThread}>;
        // The trip count comes from uniforms only, so the barriers stay in uniform control flow.
        let kTiles = (uniforms.wShape[0] * uniforms.wShape[1] * uniforms.wShape[3] + ${TILE_K - 1}) / ${TILE_K};
        for (var t = 0; t < kTiles; t = t + 1) {
          let k = t * ${TILE_K} + kk;
          let o = k % outC;
          let tap = k / outC;
          let b = tap % kw;
          let a = tap / kw;
          let inK = k < kTotal;
          for (var e = 0; e < ${loads}; e = e + 1) {
            let lane = firstLane + e * ${rowsPerLoad};
            let p = rowH[e] - a;
            let q = rowW[e] - b;
            var dyValue = 0.0;
            if (inK && p >= 0 && p < outH && q >= 0 && q < outW) {
              dyValue = dy[((dyRowStart[e] + p) * outW + q) * outC + o];
            }
            tileDy[kk * ${TILE} + lane] = dyValue;
            let i = colBase + lane;
            var wValue = 0.0;
            if (inK && i < inC) {
              wValue = w[(tap * inC + i) * outC + o];
            }
            tileW[kk * ${TILE} + lane] = wValue;
          }
          workgroupBarrier();
          for (var j = 0; j < ${TILE_K}; j = j + 1) {
            var d : array<f32, ${perThread}>;
            var g : array<f32, ${perThread}>;
            for (var u = 0; u < ${perThread}; u = u + 1) {
              d[u] = tileDy[j * ${TILE} + ly + u * ${THREADS}];
              g[u] = tileW[j * ${TILE} + lx + u * ${THREADS}];
            }
            for (var u = 0; u < ${perThread}; u = u + 1) {
              for (var v = 0; v < ${perThread}; v = v + 1) {
                acc[u * ${perThread} + v] = fma(d[u], g[v], acc[u * ${perThread} + v]);
              }
            }
          }
          workgroupBarrier();
        }

        for (var u = 0; u < ${perThread}; u = u + 1) {
          let r = rowBase + ly + u * ${THREADS};
          for (var v = 0; v < ${perThread}; v = v + 1) {
            let i = colBase + lx + v * ${THREADS};
            if (r < rows && i < inC) { result[r * inC + i] = acc[u * ${perThread} + v]; }
          }
        }
      }
    `;
  }
}

/**
 * dx [N,inH,inW,I] of a stride-1 correlation with the HWIO kernel w [kh,kw,I,O] and padding
 * (top, left) that produced dy [N,P,Q,O], on the webgpu backend (float32 tensors of it).
 */
export function conv2dInputGradWebGPU(
  backend: WebGPUBackend,
  dy: tf.TensorInfo,
  w: tf.TensorInfo,
  padTop: number,
  padLeft: number,
  inH: number,
  inW: number,
): tf.TensorInfo {
  if (dy.dtype !== 'float32' || w.dtype !== 'float32' || dy.shape[3] !== w.shape[3]) {
    throw new Error(
      `conv2dInputGradWebGPU: float32 dy [${dy.shape}] and kernel [${w.shape}] with one O expected`,
    );
  }
  const program = new InputGradProgram([dy.shape[0], inH, inW, w.shape[2]]);
  return backend.runWebGPUProgram(program, [dy, w], 'float32', [{ type: 'int32', data: [padTop, padLeft] }]);
}
