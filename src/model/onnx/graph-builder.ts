// Building blocks for writing ONNX graphs by hand: unique value names, initializers, nodes, and
// the weight re-layouts (tfjs HWIO kernels to ONNX's OIHW / IOHW, FIR filters as depthwise kernels).
import {
  type AttributeValue,
  DataType,
  type Dim,
  type NodeValue,
  type TensorValue,
  type ValueInfo,
} from './protobuf.ts';

/** Collects nodes, initializers and graph inputs/outputs under unique names. */
export class GraphBuilder {
  readonly nodes: NodeValue[] = [];
  readonly initializers: TensorValue[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  private readonly used = new Set<string>();

  private unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  input(name: string, shape: Dim[]): string {
    this.used.add(name);
    this.inputs.push({ name, elemType: DataType.FLOAT, shape });
    return name;
  }

  output(name: string, shape: Dim[]): void {
    this.outputs.push({ name, elemType: DataType.FLOAT, shape });
  }

  floats(name: string, dims: number[], data: Float32Array): string {
    const unique = this.unique(name);
    this.initializers.push({ name: unique, dims, data });
    return unique;
  }

  scalar(name: string, value: number): string {
    return this.floats(name, [], Float32Array.of(value));
  }

  int64s(name: string, values: number[]): string {
    const unique = this.unique(name);
    this.initializers.push({
      name: unique,
      dims: [values.length],
      data: BigInt64Array.from(values.map(BigInt)),
    });
    return unique;
  }

  /** Adds a node; returns its (single) output, `outName` when given. */
  op(
    opType: string,
    inputs: string[],
    name: string,
    attributes?: Record<string, AttributeValue>,
    outName?: string,
  ): string {
    const output = outName ?? this.unique(name);
    if (outName) this.used.add(outName);
    this.nodes.push({ opType, inputs, outputs: [output], name: output, attributes });
    return output;
  }
}

export function scaled(data: Float32Array, gain: number): Float32Array {
  if (gain === 1) return data;
  return data.map((v) => v * gain);
}

/** HWIO [kh,kw,I,O] -> OIHW (Conv) or IOHW (ConvTranspose), for Conv and ConvTranspose. */
export function permuteKernel(
  hwio: { shape: number[]; data: Float32Array },
  order: 'OIHW' | 'IOHW',
): Float32Array {
  const [kh, kw, ci, co] = hwio.shape;
  const out = new Float32Array(hwio.data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) {
          const src = ((y * kw + x) * ci + i) * co + o;
          const dst = order === 'OIHW' ? ((o * ci + i) * kh + y) * kw + x : ((i * co + o) * kh + y) * kw + x;
          out[dst] = hwio.data[src];
        }
  return out;
}

/** A 2D FIR filter repeated per channel as a depthwise kernel [C,1,kh,kw], times `gain`. */
export function depthwiseFilter(
  filter: { shape: number[]; data: Float32Array },
  channels: number,
  gain: number,
  flip: boolean,
): Float32Array {
  const [fh, fw] = filter.shape;
  const one = new Float32Array(fh * fw);
  for (let y = 0; y < fh; y++)
    for (let x = 0; x < fw; x++) {
      const src = flip ? (fh - 1 - y) * fw + (fw - 1 - x) : y * fw + x;
      one[y * fw + x] = filter.data[src] * gain;
    }
  const out = new Float32Array(channels * one.length);
  for (let c = 0; c < channels; c++) out.set(one, c * one.length);
  return out;
}
