// The modulated-conv epilogue and bias_act in one GPU pass on webgpu: z = clamp(gain * act(x * d +
// noise + b)), where d (demodulation), noise and b are optional and broadcast to x's shape (as
// tfjs broadcasts). Stock tfjs runs these as up to six full passes over the activations, and their
// gradients as as many again; here each direction is one dispatch, plus the reductions the
// broadcast inputs' gradients need.
//
// Two kernels, registered like the convolutions in grad/conv2d.ts so that they differentiate to any
// order (path length differentiates G's backward pass again):
//   FacestyleBiasAct      z   = clamp(gain * act(t)),  t = x * d + noise + b
//   FacestyleBiasActGrad  g_t = dz * gain * act'(t) * [|gain * act(t)| <= clamp]
// The second is linear in dz and piecewise constant in the rest, so its own gradient is itself
// (in dz) and zero (elsewhere): the set closes.
import { tf } from '../tf.ts';
import type { KernelArgs } from './webgpu/kernel-args.ts';
import { channelSum } from './webgpu/modulate.ts';

const FORWARD = 'FacestyleBiasAct';
const BACKWARD = 'FacestyleBiasActGrad';
const WORKGROUP = 64;

export interface FusedBiasActInputs {
  x: tf.Tensor;
  /** Multiplies x first (the demodulation coefficients, e.g. [N,1,1,C]). */
  d?: tf.Tensor | null;
  /** Instead of d: the demodulation's sum of squares, d = 1 / sqrt(v + DEMOD_EPS) inside the kernel. */
  v?: tf.Tensor | null;
  noise?: tf.Tensor | null;
  /** Multiplies the noise (the layer's noise strength, shape [1]). */
  ns?: tf.Tensor | null;
  b?: tf.Tensor | null;
}

export interface FusedBiasActAttrs {
  /** Leaky ReLU slope below 0; 1 = linear. */
  alpha: number;
  gain: number;
  /** Clamp limit; < 0 = no clamp. */
  clamp: number;
}

/** The optional inputs present, in kernel order. */
type Part = 'd' | 'v' | 'noise' | 'ns' | 'b';
const PARTS: Part[] = ['d', 'v', 'noise', 'ns', 'b'];

/** The demodulation's epsilon: d = 1 / sqrt(v + DEMOD_EPS) when v (the squared-norm sum) is given. */
export const DEMOD_EPS = 1e-8;

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

/** A tfjs-backend-webgpu program (the WebGPUProgram interface): flat dispatch, one output element per thread. */
class BiasActProgram {
  readonly variableNames: string[];
  readonly outputShape: number[];
  readonly shaderKey: string;
  readonly dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  readonly size = true;
  readonly uniforms = 'alpha : f32, gain : f32, clampLimit : f32,';

  constructor(
    shape: number[],
    private readonly parts: Part[],
    private readonly backward: boolean,
    private readonly clamped: boolean,
  ) {
    this.outputShape = shape;
    // Input names become WGSL identifiers and getters (getXByOutputIndex, ...).
    this.variableNames = [...(backward ? ['Dz'] : []), 'X', ...parts.map((p) => `In${p}`)];
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    const size = shape.reduce((a, b) => a * b, 1);
    this.dispatch = [Math.ceil(size / WORKGROUP), 1, 1];
    this.shaderKey = `facestyle_bias_act_${backward ? 'grad' : 'fwd'}_${parts.join('_')}_${clamped}`;
  }

  getUserCode(): string {
    const term = (p: Part) => `getIn${p}ByOutputIndex(index)`;
    let t = 'getXByOutputIndex(index)';
    if (this.parts.includes('d')) t = `${t} * ${term('d')}`;
    if (this.parts.includes('v')) t = `${t} * inverseSqrt(${term('v')} + ${DEMOD_EPS.toExponential()})`;
    const noise = this.parts.includes('ns') ? `${term('noise')} * ${term('ns')}` : term('noise');
    if (this.parts.includes('noise')) t = `${t} + ${noise}`;
    if (this.parts.includes('b')) t = `${t} + ${term('b')}`;
    const inside = this.clamped ? 'abs(u) <= uniforms.clampLimit' : 'true';
    const body = this.backward
      ? `let slope = select(uniforms.alpha, 1.0, t > 0.0);
         let u = uniforms.gain * slope * t;
         let g = select(0.0, getDzByOutputIndex(index) * uniforms.gain * slope, ${inside});
         setOutputAtIndex(index, g);`
      : `let u = uniforms.gain * select(uniforms.alpha * t, t, t > 0.0);
         setOutputAtIndex(index, ${this.clamped ? 'clamp(u, -uniforms.clampLimit, uniforms.clampLimit)' : 'u'});`;
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let t = ${t};
          ${body}
        }
      }`;
  }
}

function partsOf(inputs: tf.NamedTensorInfoMap): Part[] {
  return PARTS.filter((p) => inputs[p] != null);
}

function run(backward: boolean) {
  return ({ inputs, attrs, backend }: KernelArgs) => {
    const a = attrs as unknown as FusedBiasActAttrs;
    const parts = partsOf(inputs);
    const x = inputs.x as TensorInfoLike;
    const program = new BiasActProgram(x.shape, parts, backward, a.clamp >= 0);
    const ordered = [...(backward ? [inputs.dz] : []), x, ...parts.map((p) => inputs[p])] as TensorInfoLike[];
    return (backend as WebGPUBackendLike).runWebGPUProgram(program, ordered, 'float32', [
      { type: 'float32', data: [a.alpha] },
      { type: 'float32', data: [a.gain] },
      { type: 'float32', data: [a.clamp] },
    ]) as unknown as tf.TensorInfo;
  };
}

/**
 * Sums a gradient of x's shape (times `factor`, also of x's shape) down to the shape of a broadcast
 * input. Per-channel shapes ([C], [N,1,1,C], [1,1,1,C]) take one channel-sum program; tfjs's sum
 * over axes before the innermost is a transpose and a reduction.
 */
function reduceTo(g: tf.Tensor, shape: number[], factor: tf.Tensor | null = null): tf.Tensor {
  const aligned = [...Array(g.rank - shape.length).fill(1), ...shape];
  const c = g.shape[g.rank - 1];
  const perChannel =
    g.rank >= 2 &&
    aligned[g.rank - 1] === c &&
    (aligned[0] === 1 || aligned[0] === g.shape[0]) &&
    aligned.slice(1, -1).every((d) => d === 1);
  if (perChannel && (!factor || tf.util.arraysEqual(factor.shape, g.shape))) {
    return tf.reshape(channelSum(g, factor, aligned[0] === 1 && g.shape[0] > 1), shape);
  }
  const t = factor ? tf.mul(g, factor) : g;
  const axes = tf.backend_util.getReductionAxes(shape, t.shape);
  const summed = axes.length > 0 ? tf.sum(t, axes) : t;
  return tf.reshape(summed, shape);
}

function namedInputs(x: tf.Tensor, rest: Partial<Record<Part, tf.Tensor | null | undefined>>) {
  const named: tf.NamedTensorMap = { x };
  for (const p of PARTS) if (rest[p]) named[p] = rest[p]!;
  return named;
}

/** One kernel pair per combination of present inputs: a gradient saves a fixed list of inputs. */
function kernelNames(parts: Part[]): { forward: string; backward: string } {
  const suffix = parts.length > 0 ? `_${parts.join('_')}` : '';
  return { forward: `${FORWARD}${suffix}`, backward: `${BACKWARD}${suffix}` };
}

function runBackward(dz: tf.Tensor, saved: tf.NamedTensorMap, parts: Part[], attrs: FusedBiasActAttrs) {
  const { backward } = kernelNames(parts);
  return tf.engine().runKernel(backward, { dz, ...saved }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

const registered = new Set<string>();

function ensureRegistered(parts: Part[]): string {
  const { forward, backward } = kernelNames(parts);
  if (registered.has(forward)) return forward;
  registered.add(forward);
  const names = ['x', ...parts];
  tf.registerKernel({ kernelName: forward, backendName: 'webgpu', kernelFunc: run(false) as tf.KernelFunc });
  tf.registerKernel({ kernelName: backward, backendName: 'webgpu', kernelFunc: run(true) as tf.KernelFunc });
  tf.registerGradient({
    kernelName: forward,
    inputsToSave: names,
    gradFunc: (dy, saved, attrs) => {
      const a = attrs as unknown as FusedBiasActAttrs;
      const byName = Object.fromEntries(names.map((n, i) => [n, saved[i]])) as tf.NamedTensorMap;
      // Computed once for every input's gradient (each closure runs in its own tidy, so a lazily
      // shared tensor would be freed after the first); it lives until the backward pass ends.
      const pre = runBackward(dy as tf.Tensor, byName, parts, a);
      const gt = () => pre;
      // The multiplier of x, likewise once: d, or 1 / sqrt(v + eps) (tf ops: differentiable again).
      const k = byName.d ?? (byName.v ? tf.rsqrt(tf.add(byName.v, DEMOD_EPS)) : null);
      const grads: Record<string, () => tf.Tensor> = {
        x: () => (k ? tf.mul(gt(), k) : gt()),
      };
      if (byName.d) grads.d = () => reduceTo(gt(), byName.d.shape, byName.x);
      if (byName.v)
        grads.v = () => tf.mul(reduceTo(gt(), byName.v.shape, byName.x), tf.mul(tf.pow(k!, 3), -0.5));
      if (byName.noise)
        grads.noise = () => reduceTo(byName.ns ? tf.mul(gt(), byName.ns) : gt(), byName.noise.shape);
      if (byName.ns) grads.ns = () => reduceTo(tf.mul(gt(), byName.noise), byName.ns.shape);
      if (byName.b) grads.b = () => reduceTo(gt(), byName.b.shape);
      return grads;
    },
  });
  tf.registerGradient({
    kernelName: backward,
    inputsToSave: names,
    gradFunc: (dy, saved, attrs) => {
      const a = attrs as unknown as FusedBiasActAttrs;
      const byName = Object.fromEntries(names.map((n, i) => [n, saved[i]])) as tf.NamedTensorMap;
      const grads: Record<string, () => tf.Tensor> = {
        dz: () => runBackward(dy as tf.Tensor, byName, parts, a),
      };
      for (const n of names) grads[n] = () => tf.zerosLike(byName[n]);
      return grads;
    },
  });
  return forward;
}

/**
 * z = clamp(gain * act(x * d + noise + b)) as one webgpu dispatch (differentiable to any order).
 * Only for the webgpu backend; elsewhere callers use the composite ops.
 */
export function fusedBiasAct(inputs: FusedBiasActInputs, attrs: FusedBiasActAttrs): tf.Tensor {
  const named = namedInputs(inputs.x, inputs);
  const kernel = ensureRegistered(partsOf(named));
  return tf.engine().runKernel(kernel, named, { ...attrs } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/**
 * The backward kernel alone: dz * gain * act'(t) * [inside the clamp], t = x * d + noise + b as in
 * fusedBiasAct (differentiable to any order). With only x given, x may be the forward's output
 * instead of t when there is no clamp: gain > 0 keeps t's sign.
 */
export function fusedBiasActGrad(
  dz: tf.Tensor,
  x: tf.Tensor,
  attrs: FusedBiasActAttrs,
  rest: Partial<Record<Part, tf.Tensor | null>> = {},
): tf.Tensor {
  const named = namedInputs(x, rest);
  const parts = partsOf(named);
  ensureRegistered(parts);
  return runBackward(dz, named, parts, attrs);
}
