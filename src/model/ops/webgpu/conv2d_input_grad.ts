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
const THREADS = 16;
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

        var acc00 = 0.0; var acc01 = 0.0; var acc10 = 0.0; var acc11 = 0.0;
        // The trip count comes from uniforms only, so the barriers stay in uniform control flow.
        let kTiles = (uniforms.wShape[0] * uniforms.wShape[1] * uniforms.wShape[3] + ${TILE_K - 1}) / ${TILE_K};
        for (var t = 0; t < kTiles; t = t + 1) {
          for (var e = 0; e < ${(TILE_K * TILE) / (THREADS * THREADS)}; e = e + 1) {
            // Reduction index fastest: o is contiguous in both dy and w.
            let slot = flat + e * ${THREADS * THREADS};
            let kk = slot % ${TILE_K};
            let lane = slot / ${TILE_K};
            let k = t * ${TILE_K} + kk;
            let o = k % outC;
            let tap = k / outC;
            let b = tap % kw;
            let a = tap / kw;
            var dyValue = 0.0;
            let r = rowBase + lane;
            if (k < kTotal && r < rows) {
              let c = r % inW;
              let nh = r / inW;
              let h = nh % inH;
              let n = nh / inH;
              let p = h + uniforms.pad.x - a;
              let q = c + uniforms.pad.y - b;
              if (p >= 0 && p < outH && q >= 0 && q < outW) {
                dyValue = dy[((n * outH + p) * outW + q) * outC + o];
              }
            }
            tileDy[kk * ${TILE} + lane] = dyValue;
            var wValue = 0.0;
            let i = colBase + lane;
            if (k < kTotal && i < inC) {
              wValue = w[(tap * inC + i) * outC + o];
            }
            tileW[kk * ${TILE} + lane] = wValue;
          }
          workgroupBarrier();
          for (var kk = 0; kk < ${TILE_K}; kk = kk + 1) {
            let d0 = tileDy[kk * ${TILE} + ly];
            let d1 = tileDy[kk * ${TILE} + ly + ${THREADS}];
            let w0 = tileW[kk * ${TILE} + lx];
            let w1 = tileW[kk * ${TILE} + lx + ${THREADS}];
            acc00 = fma(d0, w0, acc00);
            acc01 = fma(d0, w1, acc01);
            acc10 = fma(d1, w0, acc10);
            acc11 = fma(d1, w1, acc11);
          }
          workgroupBarrier();
        }

        let r0 = rowBase + ly;
        let r1 = r0 + ${THREADS};
        let i0 = colBase + lx;
        let i1 = i0 + ${THREADS};
        if (r0 < rows && i0 < inC) { result[r0 * inC + i0] = acc00; }
        if (r0 < rows && i1 < inC) { result[r0 * inC + i1] = acc01; }
        if (r1 < rows && i0 < inC) { result[r1 * inC + i0] = acc10; }
        if (r1 < rows && i1 < inC) { result[r1 * inC + i1] = acc11; }
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
