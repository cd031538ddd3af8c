// Offline face detection and 68-point landmarks with @vladmandic/face-api (SSD MobileNet v1 +
// landmark net, weights shipped in the package). Its node-wasm build requires the same
// @tensorflow/tfjs that src/model/tf.ts imports, so both share one tfjs engine; it runs on the
// wasm backend (the fastest one here that has every kernel these nets use).

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { initBackend } from '../model/backend.ts';
import { tf } from '../model/tf.ts';
import { type RgbImage, rawInput, toRgb } from './image.ts';
import type { Point } from './types.ts';

type FaceApi = typeof import('@vladmandic/face-api');

export interface DetectedFace {
  score: number;
  /** Detector box in source pixels. */
  box: { x: number; y: number; width: number; height: number };
  /** The 68 iBUG landmarks in source pixels. */
  landmarks: Point[];
}

/**
 * SSD resizes its input to 512 px and the landmark net each face to 112 px, so a larger input
 * only costs conversion time (a 1920 px photo takes ~1.7x as long) without better landmarks.
 */
const DETECTION_MAX_SIDE = 1024;

const requireHere = createRequire(import.meta.url);
let loading: Promise<FaceApi> | undefined;

function loadFaceApi(): Promise<FaceApi> {
  loading ??= (async () => {
    await initBackend('wasm');
    const faceapi = requireHere('@vladmandic/face-api/dist/face-api.node-wasm.js') as FaceApi;
    if ((faceapi.tf as unknown as typeof tf).engine() !== tf.engine()) {
      throw new Error(
        '@vladmandic/face-api loaded a second copy of tfjs: dedupe @tensorflow/tfjs in node_modules',
      );
    }
    const models = join(dirname(requireHere.resolve('@vladmandic/face-api/package.json')), 'model');
    await faceapi.nets.ssdMobilenetv1.loadFromDisk(models);
    await faceapi.nets.faceLandmark68Net.loadFromDisk(models);
    return faceapi;
  })();
  loading.catch(() => {
    loading = undefined;
  });
  return loading;
}

/** Faces in `image`, largest detector box first. */
export async function detectFaces(image: RgbImage, minScore: number): Promise<DetectedFace[]> {
  const faceapi = await loadFaceApi();
  // Another part of the process may have switched backends since the models loaded.
  await initBackend('wasm');
  const scale = Math.min(1, DETECTION_MAX_SIDE / Math.max(image.width, image.height));
  const small =
    scale < 1
      ? await toRgb(
          rawInput(image).resize(Math.round(image.width * scale), Math.round(image.height * scale), {
            fit: 'fill',
          }),
        )
      : image;
  const input = tf.tensor3d(small.data, [small.height, small.width, 3], 'int32');
  try {
    const results = await faceapi
      .detectAllFaces(input, new faceapi.SsdMobilenetv1Options({ minConfidence: minScore, maxResults: 100 }))
      .withFaceLandmarks();
    const sx = image.width / small.width;
    const sy = image.height / small.height;
    return results
      .map(({ detection, landmarks }) => ({
        score: detection.score,
        box: {
          x: detection.box.x * sx,
          y: detection.box.y * sy,
          width: detection.box.width * sx,
          height: detection.box.height * sy,
        },
        landmarks: landmarks.positions.map((p): Point => [p.x * sx, p.y * sy]),
      }))
      .sort((a, b) => b.box.width * b.box.height - a.box.width * a.box.height);
  } finally {
    input.dispose();
  }
}
