// Tensors found in a file being imported, in PyTorch layout, by name: the shape is known at once
// (so the architecture can be inferred and checked before any data is read) and the values are
// read on demand.

export interface SourceTensor {
  shape: number[];
  /** The values in row-major order, float32. */
  read(): Promise<Float32Array>;
}

export type SourceTensors = Map<string, SourceTensor>;

export function constantTensor(shape: number[], values: Float32Array): SourceTensor {
  return { shape, read: async () => values };
}

/** Same values, new shape (only dimensions of size 1 may come or go: the order is unchanged). */
export function reshapedTensor(tensor: SourceTensor, shape: number[]): SourceTensor {
  const count = (s: number[]) => s.reduce((a, b) => a * b, 1);
  if (count(shape) !== count(tensor.shape)) throw new Error(`cannot reshape [${tensor.shape}] to [${shape}]`);
  return { shape, read: () => tensor.read() };
}

/** setup_filter([1, 3, 3, 1]): the normalised FIR filter every StyleGAN2 resampling uses. */
export function standardResampleFilter(): Float32Array {
  const taps = [1, 3, 3, 1];
  const out = new Float32Array(16);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) out[y * 4 + x] = (taps[y] * taps[x]) / 64;
  return out;
}
