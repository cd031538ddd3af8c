// Counts what a piece of tfjs code really runs: every kernel the engine dispatches (with its input
// shapes and attributes, so convolutions and products yield their multiply-adds) and, on webgpu,
// every GPU program the backend submits. An op-level hook, not a formula of the architecture: what
// the counts say is what the code did.
import { tf } from '../model/tf.ts';

export interface KernelCounts {
  /** Kernels the engine ran that ran no other kernel (composite kernels are counted by their parts). */
  leafKernels: number;
  /** GPU programs dispatched (webgpu only; null elsewhere). */
  gpuDispatches: number | null;
  /** 2 x multiply-adds of the convolutions and matrix products among the leaf kernels. */
  flops: number;
  /** Leaf kernels per name, most frequent first. */
  byName: Record<string, number>;
  /** GPU programs per innermost kernel name, most frequent first (webgpu only; null elsewhere). */
  programsByName: Record<string, number> | null;
}

type Shape = number[];

function size(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Multiply-adds of one kernel from its real input/output shapes and attributes; 0 for kernels
 * that are not products (elementwise work is not counted, as in the usual FLOP figures).
 */
export function multiplyAdds(
  name: string,
  inputs: Record<string, Shape>,
  attrs: tf.NamedAttrMap,
  out: Shape,
): number {
  switch (name) {
    case 'Conv2D':
    case 'FusedConv2D': {
      const [kh, kw, inChannels] = inputs.filter;
      return size(out) * kh * kw * inChannels;
    }
    case 'Conv2DBackpropInput': {
      // Every dy element meets kh*kw*inChannels filter taps.
      const [kh, kw, inChannels] = inputs.filter;
      return size(inputs.dy) * kh * kw * inChannels;
    }
    case 'Conv2DBackpropFilter': {
      const [kh, kw, inChannels] = attrs.filterShape as number[];
      return size(inputs.dy) * kh * kw * inChannels;
    }
    case 'FacestyleConv2DBackpropFilter': {
      // The webgpu filter-gradient program (ops/webgpu/conv2d_filter_grad.ts), a leaf kernel there.
      return size(inputs.dy) * (attrs.kh as number) * (attrs.kw as number) * inputs.x[3];
    }
    case 'FacestyleDense':
    case 'FacestyleDense_bias': {
      // The webgpu dense program (ops/webgpu/dense.ts): a product of depth K per output.
      const a = inputs.a;
      return size(out) * (attrs.transposeA ? a[0] : a[1]);
    }
    case 'FacestyleUpFirDn2D': {
      // The webgpu upfirdn2d program: k*k taps per output, of which 1/up^2 meet an input pixel.
      const k = (attrs.taps as number[]).length;
      const up = attrs.up as number;
      return (size(out) * k * k) / (up * up);
    }
    case 'DepthwiseConv2dNative':
    case 'FusedDepthwiseConv2D': {
      const [kh, kw] = inputs.filter;
      return size(out) * kh * kw;
    }
    case 'DepthwiseConv2dNativeBackpropInput': {
      const [kh, kw] = inputs.filter;
      return size(inputs.dy) * kh * kw;
    }
    case 'DepthwiseConv2dNativeBackpropFilter': {
      const [kh, kw] = attrs.filterShape as number[];
      return size(inputs.dy) * kh * kw;
    }
    case 'BatchMatMul':
    case '_FusedMatMul': {
      const a = inputs.a;
      const k = attrs.transposeA ? a[a.length - 2] : a[a.length - 1];
      return size(out) * k;
    }
    default:
      return 0;
  }
}

interface WebGPUBackendLike {
  recordAndSubmit: (...args: unknown[]) => unknown;
}

/** Runs `fn` (awaited) with the engine and, on webgpu, the backend hooked; returns what ran. */
export async function countKernels<T>(
  fn: () => Promise<T> | T,
): Promise<{ result: T; counts: KernelCounts }> {
  const engine = tf.engine() as unknown as {
    runKernel: (name: string, inputs: Record<string, tf.Tensor>, attrs?: tf.NamedAttrMap) => unknown;
  };
  const counts: KernelCounts = {
    leafKernels: 0,
    gpuDispatches: null,
    flops: 0,
    byName: {},
    programsByName: null,
  };
  const originalRunKernel = engine.runKernel;
  // One frame per kernel in progress: whether it ran a nested kernel.
  const frames: boolean[] = [];
  // The kernels in progress, innermost last: a GPU program belongs to the innermost.
  const names: string[] = [];
  engine.runKernel = function (this: unknown, name, inputs, attrs = {}) {
    if (frames.length > 0) frames[frames.length - 1] = true;
    frames.push(false);
    names.push(name);
    let out: unknown;
    try {
      out = originalRunKernel.call(this, name, inputs, attrs);
    } finally {
      const nested = frames.pop();
      names.pop();
      if (!nested) {
        counts.leafKernels++;
        counts.byName[name] = (counts.byName[name] ?? 0) + 1;
        const first = (Array.isArray(out) ? out[0] : out) as tf.Tensor | undefined;
        if (first) {
          const shapes = Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, t.shape]));
          counts.flops += 2 * multiplyAdds(name, shapes, attrs, first.shape);
        }
      }
    }
    return out;
  } as typeof engine.runKernel;

  const backend = tf.getBackend() === 'webgpu' ? (tf.backend() as unknown as WebGPUBackendLike) : null;
  const originalRecord = backend?.recordAndSubmit;
  if (backend && originalRecord) {
    counts.gpuDispatches = 0;
    counts.programsByName = {};
    backend.recordAndSubmit = function (this: unknown, ...args: unknown[]) {
      counts.gpuDispatches!++;
      const name = names[names.length - 1] ?? '(outside kernels)';
      counts.programsByName![name] = (counts.programsByName![name] ?? 0) + 1;
      return originalRecord.apply(this, args);
    };
  }
  try {
    const result = await fn();
    const sorted = (m: Record<string, number>) =>
      Object.fromEntries(Object.entries(m).sort((a, b) => b[1] - a[1]));
    counts.byName = sorted(counts.byName);
    if (counts.programsByName) counts.programsByName = sorted(counts.programsByName);
    return { result, counts };
  } finally {
    engine.runKernel = originalRunKernel;
    if (backend && originalRecord) backend.recordAndSubmit = originalRecord;
  }
}
