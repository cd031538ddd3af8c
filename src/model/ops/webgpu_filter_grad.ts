// The convolution filter gradient on webgpu as one implicit-GEMM dispatch reading NHWC x and dy
// directly (no padding copy, transposes, slices or per-tap products), split over the reduction
// (batch x output pixels) so that a small filter still fills the GPU, then one sum over the splits.
// dw[a, b, i, o] = sum_{n,p,q} x[n, p*s + a - top, q*s + b - left, i] * dy[n, p, q, o].
import { tf } from '../tf.ts';

const KERNEL = 'FacestyleFilterGradGemm';
const WORKGROUP = 64;
/** Enough threads to occupy a large GPU; each thread then loops over its share of the reduction. */
const TARGET_THREADS = 1 << 17;

interface TensorInfoLike {
  dataId: object;
  shape: number[];
  dtype: string;
}

interface WebGPUBackendLike {
  runWebGPUProgram(
    program: object,
    inputs: TensorInfoLike[],
    dtype: string,
    uniforms: Array<{ type: string; data: number[] }>,
  ): TensorInfoLike;
}

/** A tfjs-backend-webgpu program: output [splits, kh*kw, I, O], one thread per element. */
class FilterGradProgram {
  readonly variableNames = ['X', 'Dy'];
  readonly outputShape: number[];
  readonly shaderKey = 'facestyle_filter_grad_gemm';
  readonly dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  readonly size = true;
  readonly uniforms =
    'inH : i32, inW : i32, inC : i32, outP : i32, outQ : i32, outC : i32, total : i32, kw : i32, stride : i32, top : i32, left : i32, chunk : i32,';

  constructor(shape: number[]) {
    this.outputShape = shape;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = [Math.ceil(shape.reduce((a, b) => a * b, 1) / WORKGROUP), 1, 1];
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let c = getCoordsFromIndex(index);
          let a = c[1] / uniforms.kw;
          let b = c[1] % uniforms.kw;
          let i = c[2];
          let o = c[3];
          let first = c[0] * uniforms.chunk;
          let last = min(uniforms.total, first + uniforms.chunk);
          let pixels = uniforms.outP * uniforms.outQ;
          var acc = 0.0;
          for (var m = first; m < last; m = m + 1) {
            let n = m / pixels;
            let r = m % pixels;
            let p = r / uniforms.outQ;
            let q = r % uniforms.outQ;
            let y = p * uniforms.stride + a - uniforms.top;
            let x = q * uniforms.stride + b - uniforms.left;
            if (y >= 0 && y < uniforms.inH && x >= 0 && x < uniforms.inW) {
              acc = acc + X[((n * uniforms.inH + y) * uniforms.inW + x) * uniforms.inC + i] *
                Dy[m * uniforms.outC + o];
            }
          }
          setOutputAtIndex(index, acc);
        }
      }`;
  }
}

let registered = false;

function ensureRegistered(): void {
  if (registered) return;
  registered = true;
  tf.registerKernel({
    kernelName: KERNEL,
    backendName: 'webgpu',
    kernelFunc: (({ inputs, attrs, backend }) => {
      const x = inputs.x as TensorInfoLike;
      const dy = inputs.dy as TensorInfoLike;
      const { kh, kw, stride, top, left, splits } = attrs as Record<string, number>;
      const [n, inH, inW, inC] = x.shape;
      const [, outP, outQ, outC] = dy.shape;
      const total = n * outP * outQ;
      const program = new FilterGradProgram([splits, kh * kw, inC, outC]);
      const chunk = Math.ceil(total / splits);
      return (backend as WebGPUBackendLike).runWebGPUProgram(program, [x, dy], 'float32', [
        { type: 'int32', data: [inH] },
        { type: 'int32', data: [inW] },
        { type: 'int32', data: [inC] },
        { type: 'int32', data: [outP] },
        { type: 'int32', data: [outQ] },
        { type: 'int32', data: [outC] },
        { type: 'int32', data: [total] },
        { type: 'int32', data: [kw] },
        { type: 'int32', data: [stride] },
        { type: 'int32', data: [top] },
        { type: 'int32', data: [left] },
        { type: 'int32', data: [chunk] },
      ]);
    }) as tf.KernelFunc,
  });
}

/**
 * Gradient in w of a correlation (stride, zero padding top/left; the bottom/right padding follows
 * from the shapes): x [N,H,W,I], dy [N,P,Q,O] -> [kh,kw,I,O]. webgpu only; not differentiable by
 * itself (conv2d.ts's kernels give it its gradients).
 */
export function filterGradientWebGPU(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  geometry: { stride: number; top: number; left: number },
  kh: number,
  kw: number,
): tf.Tensor4D {
  ensureRegistered();
  const [n, , , inC] = x.shape;
  const [, outP, outQ, outC] = dy.shape;
  const total = n * outP * outQ;
  const outputs = kh * kw * inC * outC;
  const splits = Math.max(1, Math.min(Math.ceil(TARGET_THREADS / outputs), Math.ceil(total / 16)));
  const partial = tf.engine().runKernel(KERNEL, { x, dy }, { kh, kw, ...geometry, splits }) as tf.Tensor4D;
  const summed = splits > 1 ? tf.sum(partial, 0) : partial;
  return tf.reshape(summed, [kh, kw, inC, outC]);
}
