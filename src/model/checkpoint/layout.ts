// Tensors are stored in PyTorch layouts under their official NVlabs names (so official weights load
// by name and our files load in the official tools); the networks run in TensorFlow.js layouts.
// These two functions are the only place that knows the difference.

/** Shape of a tensor after conversion from its PyTorch layout to ours. */
export function tfShapeOf(name: string, torchShape: number[]): number[] {
  const kind = layoutKind(name, torchShape);
  if (kind === 'conv') {
    const [o, i, kh, kw] = torchShape;
    return [kh, kw, i, o];
  }
  if (kind === 'fc') return [torchShape[1], torchShape[0]];
  if (kind === 'const') {
    const [c, h, w] = torchShape;
    return [h, w, c];
  }
  return torchShape;
}

type LayoutKind = 'conv' | 'fc' | 'const' | 'same';

function layoutKind(name: string, shape: number[]): LayoutKind {
  if (name.endsWith('.weight') && shape.length === 4) return 'conv';
  if (name.endsWith('.weight') && shape.length === 2) return 'fc';
  if (name.endsWith('.const') && shape.length === 3) return 'const';
  return 'same';
}

/**
 * Visits every element of a tensor of `kind` as a pair of flat indices: in the PyTorch layout
 * ([O,I,kh,kw] conv, [out,in] FC, [C,H,W] const) and in ours (HWIO, [in,out], HWC). Both
 * directions of the conversion walk the same pairs.
 */
function forEachIndexPair(
  kind: Exclude<LayoutKind, 'same'>,
  torchShape: number[],
  visit: (torchIndex: number, tfIndex: number) => void,
): void {
  if (kind === 'conv') {
    const [o, i, kh, kw] = torchShape;
    for (let a = 0; a < o; a++)
      for (let b = 0; b < i; b++)
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++) visit(((a * i + b) * kh + y) * kw + x, ((y * kw + x) * i + b) * o + a);
  } else if (kind === 'fc') {
    const [o, i] = torchShape;
    for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) visit(a * i + b, b * o + a);
  } else {
    const [c, h, w] = torchShape;
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) visit((ch * h + y) * w + x, (y * w + x) * c + ch);
  }
}

/** Permutes data in PyTorch layout ([O,I,kh,kw] conv, [out,in] FC, [C,H,W] const) to ours. */
export function torchToTf(name: string, torchShape: number[], data: Float32Array): Float32Array {
  const kind = layoutKind(name, torchShape);
  if (kind === 'same') return data;
  const out = new Float32Array(data.length);
  forEachIndexPair(kind, torchShape, (torchIndex, tfIndex) => {
    out[tfIndex] = data[torchIndex];
  });
  return out;
}

/** Shape of a tensor in its PyTorch layout, from its shape in ours (inverse of tfShapeOf). */
export function torchShapeOf(name: string, tfShape: number[]): number[] {
  if (name.endsWith('.weight') && tfShape.length === 4)
    return [tfShape[3], tfShape[2], tfShape[0], tfShape[1]];
  if (name.endsWith('.weight') && tfShape.length === 2) return [tfShape[1], tfShape[0]];
  if (name.endsWith('.const') && tfShape.length === 3) return [tfShape[2], tfShape[0], tfShape[1]];
  return tfShape;
}

/** Inverse of torchToTf: `tfShape` is the shape in our layout; returns data and the PyTorch shape. */
export function tfToTorch(
  name: string,
  tfShape: number[],
  data: Float32Array,
): { shape: number[]; data: Float32Array } {
  const torchShape = torchShapeOf(name, tfShape);
  const kind = layoutKind(name, torchShape);
  if (kind === 'same') return { shape: tfShape, data };
  const out = new Float32Array(data.length);
  forEachIndexPair(kind, torchShape, (torchIndex, tfIndex) => {
    out[torchIndex] = data[tfIndex];
  });
  return { shape: torchShape, data: out };
}
