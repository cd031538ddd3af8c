// upfirdn2d (zero-insert by `up`, pad or crop, 2D FIR, keep every `down`-th pixel) as ONE webgpu
// program that reads the NHWC input in place: the composite in ../upfirdn2d.ts runs concat + zeros
// per up-sampling axis, a pad or slice, the depthwise conv and up to two slices for the decimation,
// forward and again backward. The adjoint of upfirdn2d is upfirdn2d (up and down swapped, the filter
// flipped, the padding mirrored: NVlabs' upfirdn2d.py), so one kernel with itself as gradient is
// closed under differentiation (R1 and path length differentiate it twice).
//
// Only types come from tfjs-backend-webgpu (see conv2d_filter_grad.ts).
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { tf } from '../../tf.ts';

const UPFIRDN = 'FacestyleUpFirDn2D';

export interface UpFirDnParams {
  up: number;
  down: number;
  /** [x0, x1, y0, y1] pixels added (negative: removed) on the zero-inserted input, as ../upfirdn2d.ts. */
  pad: [number, number, number, number];
  /** 1D taps of the separable filter (normalised to sum 1 here). */
  taps: number[];
  gain: number;
  /** True: convolution (the filter flipped), as firFilter's default and NVlabs' flip_filter=False. */
  flip: boolean;
}

function outputSize(size: number, p: UpFirDnParams, before: number, after: number): number {
  const filtered = size * p.up + before + after - p.taps.length + 1;
  return Math.ceil(filtered / p.down);
}

/** The 2D kernel as correlation weights, row-major [ky][kx], gain included. */
function kernelValues(p: UpFirDnParams): number[] {
  const sum = p.taps.reduce((a, b) => a + b, 0);
  const f = (p.flip ? [...p.taps].reverse() : p.taps).map((t) => t / sum);
  return f.flatMap((fy) => f.map((fx) => fy * fx * p.gain));
}

class UpFirDnProgram implements WebGPUProgram {
  variableNames = ['x'];
  workgroupSize: [number, number, number] = [64, 1, 1];
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  size = true;
  shaderKey: string;
  private readonly weights: number[];

  constructor(
    inShape: number[],
    private readonly p: UpFirDnParams,
  ) {
    const [n, h, w, c] = inShape;
    const [x0, x1, y0, y1] = p.pad;
    this.outputShape = [n, outputSize(h, p, y0, y1), outputSize(w, p, x0, x1), c];
    this.dispatchLayout = { x: [0, 1, 2, 3] };
    const elements = this.outputShape.reduce((a, b) => a * b, 1);
    this.dispatch = [Math.ceil(elements / 64), 1, 1];
    this.weights = kernelValues(p);
    // Everything but the shapes is baked into the shader, so it is part of the key.
    this.shaderKey = `facestyleUpFirDn_${p.up}_${p.down}_${p.pad.join(',')}_${this.weights.join(',')}`;
  }

  getUserCode(): string {
    const k = this.p.taps.length;
    const [x0, , y0] = this.p.pad;
    const literal = (v: number) => (Number.isInteger(v) ? `${v}.0` : `${v}`);
    return `
      const weights = array<f32, ${k * k}>(${this.weights.map(literal).join(', ')});

      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        let coords = getCoordsFromIndex(index);
        let inH = uniforms.xShape[1];
        let inW = uniforms.xShape[2];
        let channels = uniforms.xShape[3];
        var acc = 0.0;
        for (var ky = 0; ky < ${k}; ky = ky + 1) {
          // Row of the zero-inserted input; only multiples of up hold input pixels.
          let zy = coords[1] * ${this.p.down} + ky - ${y0};
          if (zy < 0 || zy % ${this.p.up} != 0) { continue; }
          let iy = zy / ${this.p.up};
          if (iy >= inH) { continue; }
          for (var kx = 0; kx < ${k}; kx = kx + 1) {
            let zx = coords[2] * ${this.p.down} + kx - ${x0};
            if (zx < 0 || zx % ${this.p.up} != 0) { continue; }
            let ix = zx / ${this.p.up};
            if (ix >= inW) { continue; }
            acc = fma(weights[ky * ${k} + kx], x[((coords[0] * inH + iy) * inW + ix) * channels + coords[3]], acc);
          }
        }
        setOutputAtIndex(index, acc);
      }
    `;
  }
}

function paramsOf(attrs: tf.NamedAttrMap): UpFirDnParams {
  return {
    up: attrs.up as number,
    down: attrs.down as number,
    pad: attrs.pad as UpFirDnParams['pad'],
    taps: attrs.taps as number[],
    gain: attrs.gain as number,
    flip: attrs.flip as boolean,
  };
}

function attrsOf(p: UpFirDnParams): tf.NamedAttrMap {
  return { up: p.up, down: p.down, pad: [...p.pad], taps: [...p.taps], gain: p.gain, flip: p.flip };
}

/** NVlabs' upfirdn2d gradient: up and down swapped, the filter flipped, the padding mirrored. */
function adjointParams(p: UpFirDnParams, inShape: number[], outShape: number[]): UpFirDnParams {
  const k = p.taps.length;
  const [x0, , y0] = p.pad;
  const [, inH, inW] = inShape;
  const [, outH, outW] = outShape;
  return {
    up: p.down,
    down: p.up,
    pad: [
      k - x0 - 1,
      inW * p.up - outW * p.down + x0 - p.up + 1,
      k - y0 - 1,
      inH * p.up - outH * p.down + y0 - p.up + 1,
    ],
    taps: p.taps,
    gain: p.gain,
    flip: !p.flip,
  };
}

function register(): void {
  if (!tf.getKernel(UPFIRDN, 'webgpu')) {
    tf.registerKernel({
      kernelName: UPFIRDN,
      backendName: 'webgpu',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const x = inputs.x as tf.TensorInfo;
        const program = new UpFirDnProgram(x.shape, paramsOf(attrs ?? {}));
        return (backend as WebGPUBackend).runWebGPUProgram(program, [x], 'float32');
      },
    });
  }
  if (!tf.getGradient(UPFIRDN)) {
    tf.registerGradient({
      kernelName: UPFIRDN,
      inputsToSave: ['x'],
      gradFunc: (dy, saved, attrs) => {
        const [x] = saved;
        const d = dy as tf.Tensor4D;
        const adjoint = adjointParams(paramsOf(attrs as tf.NamedAttrMap), x.shape, d.shape);
        const [, inH, inW] = x.shape as [number, number, number, number];
        return { x: () => upfirdn2dWebGPU(d, adjoint, [inH, inW]) };
      },
    });
  }
}

/**
 * upfirdn2d on the webgpu backend as one program; `expected` [H, W] checks the output size (the
 * adjoint's padding formula assumes the forward's sizes).
 */
export function upfirdn2dWebGPU(x: tf.Tensor4D, p: UpFirDnParams, expected?: [number, number]): tf.Tensor4D {
  register();
  if (x.dtype !== 'float32') throw new Error(`upfirdn2dWebGPU: float32 input expected, got ${x.dtype}`);
  const y = tf.engine().runKernel(UPFIRDN, { x }, attrsOf(p)) as tf.Tensor4D;
  if (expected && (y.shape[1] !== expected[0] || y.shape[2] !== expected[1])) {
    throw new Error(`upfirdn2dWebGPU: adjoint shape [${y.shape}] does not match the input [${expected}]`);
  }
  return y;
}
