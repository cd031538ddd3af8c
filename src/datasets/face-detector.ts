// Offline face detection and 68-point landmarks with @vladmandic/face-api (SSD MobileNet v1 +
// landmark net, weights shipped in the package), run in a worker thread of its own
// (face-detector-thread.mjs). The thread has its own TensorFlow.js engine on the wasm backend (the
// fastest one here that has every kernel these nets use), so a detection neither switches the
// backend of this process's engine (a fine-tune running on webgpu in the GPU worker) nor blocks
// this thread's event loop (the bot answering interactions while it ingests an archive) for the
// ~350 ms of synchronous wasm work a photo takes.

import { Worker } from 'node:worker_threads';
import { type RgbImage, rawInput, toRgb } from './image.ts';
import type { Point } from './types.ts';

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

const THREAD_SCRIPT = new URL('./face-detector-thread.mjs', import.meta.url);

/** What the thread answers: the faces in the pixels it was sent, or why it found none. */
type ThreadReply = { id: number } & ({ faces: DetectedFace[] } | { error: string; stack?: string });

interface Pending {
  resolve: (faces: DetectedFace[]) => void;
  reject: (err: Error) => void;
}

interface DetectorThread {
  worker: Worker;
  pending: Map<number, Pending>;
  /** Rejects every pending detection (once) and lets the next one start a new thread. */
  fail: (err: Error) => void;
}

let thread: DetectorThread | undefined;
let nextId = 0;

/** The process's detection thread, started on first use and again after it died. */
function detectorThread(): DetectorThread {
  if (thread) return thread;
  // No execArgv of this process (tsx's --import, inspector flags): the thread is plain JavaScript.
  const worker = new Worker(THREAD_SCRIPT, { execArgv: [] });
  const pending = new Map<number, Pending>();
  let dead = false;
  const started: DetectorThread = {
    worker,
    pending,
    fail: (err) => {
      if (thread === started) thread = undefined;
      if (dead) return;
      dead = true;
      for (const { reject } of pending.values()) reject(err);
      pending.clear();
    },
  };
  const { fail } = started;
  // Idle, the thread never keeps the process alive; it is ref'd only while a detection is awaited.
  worker.unref();
  worker.on('message', (reply: ThreadReply) => {
    const request = pending.get(reply.id);
    if (!request) return;
    pending.delete(reply.id);
    if (pending.size === 0) worker.unref();
    if ('error' in reply) {
      const err = new Error(`face detection failed: ${reply.error}`);
      if (reply.stack) err.stack = `${err.message}\n(in the face detection thread) ${reply.stack}`;
      request.reject(err);
    } else {
      request.resolve(reply.faces);
    }
  });
  worker.on('error', (err) => fail(new Error(`the face detection thread crashed: ${err.message}`)));
  worker.on('exit', (code) => fail(new Error(`the face detection thread exited (code ${code})`)));
  thread = started;
  return started;
}

/**
 * Ends the detection thread, if one runs: detections still waiting on it reject, and the next one
 * starts a new thread. Not needed before exit (an idle thread does not keep the process alive).
 */
export async function closeFaceDetector(): Promise<void> {
  const running = thread;
  if (!running) return;
  running.fail(new Error('the face detection thread exited: it was closed'));
  await running.worker.terminate();
}

/** Detections sent to the thread and not answered yet (for health checks and tests). */
export function detectionsInFlight(): number {
  return thread?.pending.size ?? 0;
}

/** Sends packed RGB pixels to the thread; the buffer is transferred, so it must be the caller's own. */
function detectInThread(data: Uint8Array, width: number, height: number, minScore: number) {
  const { worker, pending } = detectorThread();
  const id = nextId++;
  return new Promise<DetectedFace[]>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.ref();
    try {
      worker.postMessage({ id, data, width, height, minScore }, [data.buffer as ArrayBuffer]);
    } catch (err) {
      pending.delete(id);
      if (pending.size === 0) worker.unref();
      reject(new Error(`cannot send the image to the face detection thread: ${(err as Error).message}`));
    }
  });
}

/** Faces in `image`, largest detector box first. */
export async function detectFaces(image: RgbImage, minScore: number): Promise<DetectedFace[]> {
  const scale = Math.min(1, DETECTION_MAX_SIDE / Math.max(image.width, image.height));
  const small =
    scale < 1
      ? await toRgb(
          rawInput(image).resize(Math.round(image.width * scale), Math.round(image.height * scale), {
            fit: 'fill',
          }),
        )
      : image;
  // A copy in an ArrayBuffer of its own, transferred: the caller keeps using its image, and a
  // Buffer may share a pooled ArrayBuffer or be native memory that cannot be transferred.
  const pixels = new Uint8Array(small.data);
  const faces = await detectInThread(pixels, small.width, small.height, minScore);
  const sx = image.width / small.width;
  const sy = image.height / small.height;
  return faces
    .map(({ score, box, landmarks }) => ({
      score,
      box: { x: box.x * sx, y: box.y * sy, width: box.width * sx, height: box.height * sy },
      landmarks: landmarks.map(([x, y]): Point => [x * sx, y * sy]),
    }))
    .sort((a, b) => b.box.width * b.box.height - a.box.width * a.box.height);
}
