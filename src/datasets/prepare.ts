// From one decoded-or-not source file to its training image(s): FFHQ alignment of the detected
// faces, or a centre crop for pictures that are already framed (art, where detectors fail).

import { detectFaces } from './face-detector.ts';
import { ffhqCrop, quadAffine } from './ffhq.ts';
import { type InspectedImage, inspectImage, isRejection, type RgbImage, toRgb } from './image.ts';
import type { ArchiveLimits } from './limits.ts';
import type {
  AffineMatrix,
  AlignMode,
  EntryStatus,
  FaceInfo,
  MultipleFacesPolicy,
  Transform,
} from './types.ts';
import { alignToQuad } from './warp.ts';

export interface PrepareOptions {
  resolution: number;
  align: AlignMode;
  multipleFaces: MultipleFacesPolicy;
  minFaceSize: number;
  minFaceScore: number;
  limits: ArchiveLimits;
}

export type Prepared =
  | { status: 'candidate'; image: RgbImage; transform: Transform; face?: FaceInfo; sourceSize: Size }
  | {
      status: Exclude<EntryStatus, 'kept' | 'duplicate'>;
      reason: string;
      face?: FaceInfo;
      sourceSize?: Size;
    };

interface Size {
  width: number;
  height: number;
}

/** One result per output decision: one for most images, one per face with `multipleFaces: 'all'`. */
export async function prepareImage(data: Buffer, options: PrepareOptions): Promise<Prepared[]> {
  const inspected = await inspectImage(data, options.limits);
  if (isRejection(inspected)) return [inspected];
  try {
    if (options.align === 'center') return [await centerCrop(inspected, options)];
    const aligned = await alignFaces(inspected, options);
    // auto: a picture the detector finds no face in is taken as already framed (drawn faces).
    if (options.align === 'auto' && aligned.length === 1 && aligned[0].status === 'no-face')
      return [await centerCrop(inspected, options)];
    return aligned;
  } catch (err) {
    // Headers can be fine while the pixel data is not (truncated or corrupt files).
    return [
      { status: 'unreadable', reason: `cannot decode the ${inspected.format}: ${(err as Error).message}` },
    ];
  }
}

async function centerCrop(inspected: InspectedImage, options: PrepareOptions): Promise<Prepared> {
  const { width, height } = inspected;
  const sourceSize = { width, height };
  const size = Math.min(width, height);
  const needed = Math.ceil(options.minFaceSize * options.resolution);
  if (size < needed) {
    return { status: 'too-small', reason: `image is ${size} px across, needs ${needed}`, sourceSize };
  }
  const left = Math.floor((width - size) / 2);
  const top = Math.floor((height - size) / 2);
  const image = await toRgb(
    inspected
      .open()
      .extract({ left, top, width: size, height: size })
      .resize(options.resolution, options.resolution, { fit: 'fill', kernel: 'lanczos3' }),
  );
  const k = size / options.resolution;
  return {
    status: 'candidate',
    image,
    transform: { kind: 'center', crop: { left, top, size }, affine: [k, 0, left, 0, k, top] },
    sourceSize,
  };
}

async function alignFaces(inspected: InspectedImage, options: PrepareOptions): Promise<Prepared[]> {
  const sourceSize = { width: inspected.width, height: inspected.height };
  const rgb = await toRgb(inspected.open());
  const faces = (await detectFaces(rgb, options.minFaceScore))
    .map((face) => ({ face, crop: ffhqCrop(face.landmarks) }))
    .sort((a, b) => b.crop.size - a.crop.size);
  if (faces.length === 0) return [{ status: 'no-face', reason: 'no face detected', sourceSize }];
  if (faces.length > 1 && options.multipleFaces === 'skip') {
    return [{ status: 'several-faces', reason: `${faces.length} faces`, sourceSize }];
  }
  const chosen = options.multipleFaces === 'all' ? faces : faces.slice(0, 1);
  const needed = Math.ceil(options.minFaceSize * options.resolution);
  const results: Prepared[] = [];
  for (const [index, { face, crop }] of chosen.entries()) {
    const info: FaceInfo = {
      index,
      count: faces.length,
      score: round(face.score, 3),
      cropSize: round(crop.size, 1),
    };
    if (crop.size < needed) {
      results.push({
        status: 'too-small',
        reason: `face crop is ${Math.round(crop.size)} px across, needs ${needed}`,
        face: info,
        sourceSize,
      });
      continue;
    }
    const image = await alignToQuad(rgb, crop.quad, options.resolution);
    const quad = crop.quad.map(([x, y]) => [round(x, 2), round(y, 2)]) as typeof crop.quad;
    results.push({
      status: 'candidate',
      image,
      transform: {
        kind: 'ffhq',
        quad,
        affine: quadAffine(crop.quad, options.resolution).map((v) => round(v, 6)) as AffineMatrix,
      },
      face: info,
      sourceSize,
    });
  }
  return results;
}

function round(value: number, digits: number): number {
  const k = 10 ** digits;
  return Math.round(value * k) / k;
}
