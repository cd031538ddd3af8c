// A small matrix product with its equalised-learning-rate gains, bias and activation in one webgpu
// dispatch:
//
//   out[m, n] = gain * act(alpha * sum_k f(A)[m, k] * f(B)[k, n] + beta * bias[n])
//
// A and B as stored or transposed, f = x or x^2 on one of them. It serves the layers whose
// products are tiny next to the convolutions: the mapping network and the styles' affine layers
// (stored weights times their gains, bias times the learning-rate multiplier: no per-call weight
// pass), the demodulation sums (styles squared on the fly) and the weights' squared sums. Stock
// tfjs runs each of these as a matMul, a bias_act and up to three elementwise passes, and their
// gradients as twice as many; here the gradients are this kernel again (transposed operands) plus
// the activation's mask, so the set differentiates to any order (path length differentiates the
// affine layers' input gradient in their weights).
//
// One thread per output element looping over K: K is at most a layer's width (512) forward, and
// the batch (or the input width) in the gradients.
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { tf } from '../../tf.ts';
import { fusedBiasActGrad } from '../fused_bias_act.ts';
import type { KernelArgs } from './kernel-args.ts';

const DENSE = 'FacestyleDense';
const WORKGROUP = 64;

/** Which stored operand is squared elementwise before the product. */
export type DenseSquare = 'none' | 'a' | 'b';

export interface DenseAttrs {
  transposeA: boolean;
  transposeB: boolean;
  square: DenseSquare;
  /** Multiplies the product. */
  alpha: number;
  /** Multiplies the bias. */
  beta: number;
  /** Leaky ReLU slope below 0; 1 = linear. */
  slope: number;
  /** Multiplies after the activation. */
  gain: number;
}

class DenseProgram implements WebGPUProgram {
  readonly variableNames: string[];
  readonly outputShape: number[];
  readonly shaderKey: string;
  readonly dispatchLayout: { x: number[] };
  readonly dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  readonly size = true;
  readonly uniforms =
    'alpha : f32, beta : f32, slope : f32, gain : f32, rows : i32, cols : i32, depth : i32,';

  constructor(
    rows: number,
    cols: number,
    private readonly a: DenseAttrs,
    private readonly hasBias: boolean,
  ) {
    this.outputShape = [rows, cols];
    this.variableNames = ['denseA', 'denseB', ...(hasBias ? ['denseBias'] : [])];
    this.dispatchLayout = { x: [0, 1] };
    this.dispatch = [Math.ceil((rows * cols) / WORKGROUP), 1, 1];
    this.shaderKey = `facestyle_dense_${a.transposeA}_${a.transposeB}_${a.square}_${hasBias}`;
  }

  getUserCode(): string {
    const { transposeA, transposeB, square } = this.a;
    const aIndex = transposeA ? 'k * uniforms.rows + m' : 'm * uniforms.depth + k';
    const bIndex = transposeB ? 'n * uniforms.depth + k' : 'k * uniforms.cols + n';
    const f = (v: string, on: boolean) => (on ? `${v} * ${v}` : v);
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let m = index / uniforms.cols;
          let n = index % uniforms.cols;
          var acc = 0.0;
          for (var k = 0; k < uniforms.depth; k = k + 1) {
            let av = denseA[${aIndex}];
            let bv = denseB[${bIndex}];
            acc = fma(${f('av', square === 'a')}, ${f('bv', square === 'b')}, acc);
          }
          let t = uniforms.alpha * acc${this.hasBias ? ' + uniforms.beta * denseBias[n]' : ''};
          setOutputAtIndex(index, uniforms.gain * select(uniforms.slope * t, t, t > 0.0));
        }
      }`;
  }
}

/** [rows, depth] of A's product form and [depth, cols] of B's, from the stored shapes. */
function productShape(a: number[], b: number[], attrs: DenseAttrs) {
  const [rows, depth] = attrs.transposeA ? [a[1], a[0]] : [a[0], a[1]];
  const [depthB, cols] = attrs.transposeB ? [b[1], b[0]] : [b[0], b[1]];
  if (a.length !== 2 || b.length !== 2 || depth !== depthB) {
    throw new Error(
      `dense: A [${a}] and B [${b}] do not multiply (transposes ${attrs.transposeA}, ${attrs.transposeB})`,
    );
  }
  return { rows, depth, cols };
}

function kernelName(hasBias: boolean): string {
  return hasBias ? `${DENSE}_bias` : DENSE;
}

function run({ inputs, attrs, backend }: KernelArgs) {
  const a = attrs as unknown as DenseAttrs;
  const ordered = [inputs.a, inputs.b, ...(inputs.bias ? [inputs.bias] : [])] as tf.TensorInfo[];
  const { rows, depth, cols } = productShape(ordered[0].shape, ordered[1].shape, a);
  const program = new DenseProgram(rows, cols, a, ordered.length === 3);
  return (backend as WebGPUBackend).runWebGPUProgram(program, ordered, 'float32', [
    { type: 'float32', data: [a.alpha] },
    { type: 'float32', data: [a.beta] },
    { type: 'float32', data: [a.slope] },
    { type: 'float32', data: [a.gain] },
    { type: 'int32', data: [rows] },
    { type: 'int32', data: [cols] },
    { type: 'int32', data: [depth] },
  ]) as unknown as tf.TensorInfo;
}

const LINEAR = { beta: 0, slope: 1, gain: 1 };

/**
 * The gradients, through this kernel again. With P = f(A') f(B') (A', B' the product forms):
 *   g  = dz * gain * act'(t), from the output computed again (gain > 0 keeps t's sign)
 *   dA' = alpha g f(B')^T (times 2A' when A is squared), dB' = alpha f(A')^T g (times 2B'),
 *   dbias = beta * (sum of g over rows): a product with a column of ones.
 */
function gradients(dz: tf.Tensor2D, saved: tf.Tensor[], attrs: DenseAttrs, hasBias: boolean) {
  const [a, b] = saved as tf.Tensor2D[];
  const bias = hasBias ? saved[2] : null;
  const { transposeA: tA, transposeB: tB, square, alpha } = attrs;
  // Computed once for every input's gradient; it lives until the backward pass ends.
  let g: tf.Tensor2D = dz;
  if (attrs.slope !== 1) {
    // The activation's mask from the output, computed again rather than saved: a saved output is
    // recorded on an outer tape before the kernel that made it, which cuts the path from the
    // inputs through the mask, and the second-order pass would then leave the bias without its
    // (zero) gradient where the composite gives one.
    const z = dense(a, b, attrs, bias);
    g = fusedBiasActGrad(dz, z, { alpha: attrs.slope, gain: attrs.gain, clamp: -1 }) as tf.Tensor2D;
  } else if (attrs.gain !== 1) {
    g = tf.mul(dz, attrs.gain);
  }
  // A squared input stays squared where it reappears as an operand of a gradient's product.
  const onFirst = (squared: boolean): DenseSquare => (squared ? 'a' : 'none');
  const onSecond = (squared: boolean): DenseSquare => (squared ? 'b' : 'none');
  const grads: Record<string, () => tf.Tensor> = {
    a: () => {
      const k = square === 'a' ? 2 * alpha : alpha;
      // dA' = g f(B')^T, or stored transposed: dA = f(B') g^T.
      const d = tA
        ? dense(b, g, {
            ...LINEAR,
            transposeA: tB,
            transposeB: true,
            square: onFirst(square === 'b'),
            alpha: k,
          })
        : dense(g, b, {
            ...LINEAR,
            transposeA: false,
            transposeB: !tB,
            square: onSecond(square === 'b'),
            alpha: k,
          });
      return square === 'a' ? tf.mul(d, a) : d;
    },
    b: () => {
      const k = square === 'b' ? 2 * alpha : alpha;
      // dB' = f(A')^T g, or stored transposed: dB = g^T f(A').
      const d = tB
        ? dense(g, a, {
            ...LINEAR,
            transposeA: true,
            transposeB: tA,
            square: onSecond(square === 'a'),
            alpha: k,
          })
        : dense(a, g, {
            ...LINEAR,
            transposeA: !tA,
            transposeB: false,
            square: onFirst(square === 'a'),
            alpha: k,
          });
      return square === 'b' ? tf.mul(d, b) : d;
    },
  };
  if (hasBias) {
    grads.bias = () => {
      const ones = tf.ones([g.shape[0], 1]) as tf.Tensor2D;
      const d = dense(ones, g, {
        ...LINEAR,
        transposeA: true,
        transposeB: false,
        square: 'none',
        alpha: attrs.beta,
      });
      return tf.reshape(d, bias!.shape);
    };
  }
  return grads;
}

function register(hasBias: boolean): string {
  const name = kernelName(hasBias);
  if (!tf.getKernel(name, 'webgpu')) {
    tf.registerKernel({ kernelName: name, backendName: 'webgpu', kernelFunc: run as tf.KernelFunc });
  }
  if (!tf.getGradient(name)) {
    tf.registerGradient({
      kernelName: name,
      inputsToSave: hasBias ? ['a', 'b', 'bias'] : ['a', 'b'],
      gradFunc: (dy, saved, attrs) =>
        gradients(dy as tf.Tensor2D, saved, attrs as unknown as DenseAttrs, hasBias),
    });
  }
  return name;
}

/**
 * gain * act(alpha * f(A) f(B) + beta * bias) as one webgpu dispatch (2D operands, bias [cols]),
 * differentiable to any order. webgpu only: elsewhere callers use the composite (../dense.ts).
 */
export function dense(
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  attrs: DenseAttrs,
  bias: tf.Tensor | null = null,
): tf.Tensor2D {
  productShape(a.shape, b.shape, attrs);
  const name = register(bias !== null);
  const inputs: tf.NamedTensorMap = bias ? { a, b, bias } : { a, b };
  return tf.engine().runKernel(name, inputs, { ...attrs } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}
