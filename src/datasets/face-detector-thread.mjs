// The face detection thread started by face-detector.ts: @vladmandic/face-api (SSD MobileNet v1 +
// 68-point landmark net) on a TensorFlow.js engine of its own. A worker thread has its own module
// graph, so the tfjs required here is a second engine with its own wasm backend: selecting wasm
// here leaves the backend, tensors and event loop of the thread that asked (a fine-tune on webgpu,
// the bot answering interactions) alone. Plain JavaScript so that it runs without tsx's loader.
//
// Messages in: { id, data: Uint8Array (packed RGB), width, height, minScore }.
// Messages out: { id, faces: [{ score, box: { x, y, width, height }, landmarks: [[x, y], ...] }] },
// in the pixels it was given, or { id, error, stack } when this detection failed.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parentPort } from 'node:worker_threads';

if (!parentPort) throw new Error('face-detector-thread.mjs runs as a worker thread of face-detector.ts');
const port = parentPort;

const require = createRequire(import.meta.url);
const packageDir = (name) => dirname(require.resolve(`${name}/package.json`));

let loading;

function loadFaceApi() {
  loading ??= (async () => {
    const tf = require('@tensorflow/tfjs');
    const wasm = require('@tensorflow/tfjs-backend-wasm');
    // PROD skips tfjs's debug-only checks; the default wasm location is a CDN and the binaries ship
    // in the package's dist/ folder (as in src/model/backend.ts).
    tf.env().set('PROD', true);
    wasm.setWasmPaths(`${join(packageDir('@tensorflow/tfjs-backend-wasm'), 'dist')}/`);
    if (!(await tf.setBackend('wasm')) || tf.getBackend() !== 'wasm') {
      throw new Error('the wasm backend of TensorFlow.js did not start in the face detection thread');
    }
    const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
    if (faceapi.tf.engine() !== tf.engine()) {
      throw new Error(
        '@vladmandic/face-api loaded a second copy of tfjs: dedupe @tensorflow/tfjs in node_modules',
      );
    }
    const models = join(packageDir('@vladmandic/face-api'), 'model');
    await faceapi.nets.ssdMobilenetv1.loadFromDisk(models);
    await faceapi.nets.faceLandmark68Net.loadFromDisk(models);
    return { tf, faceapi };
  })();
  // A failed start is tried again by the next detection.
  loading.catch(() => {
    loading = undefined;
  });
  return loading;
}

async function detect({ data, width, height, minScore }) {
  const { tf, faceapi } = await loadFaceApi();
  const input = tf.tensor3d(data, [height, width, 3], 'int32');
  try {
    const results = await faceapi
      .detectAllFaces(input, new faceapi.SsdMobilenetv1Options({ minConfidence: minScore, maxResults: 100 }))
      .withFaceLandmarks();
    return results.map(({ detection, landmarks }) => ({
      score: detection.score,
      box: {
        x: detection.box.x,
        y: detection.box.y,
        width: detection.box.width,
        height: detection.box.height,
      },
      landmarks: landmarks.positions.map((p) => [p.x, p.y]),
    }));
  } finally {
    input.dispose();
  }
}

// One detection at a time: they share the nets and the engine's memory.
let queue = Promise.resolve();

port.on('message', (request) => {
  queue = queue.then(async () => {
    try {
      port.postMessage({ id: request.id, faces: await detect(request) });
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      port.postMessage({ id: request.id, error: error.message, stack: error.stack });
    }
  });
});
