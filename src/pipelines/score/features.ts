// Feature vectors for KID: the global-average-pooled last convolutional features of a pretrained
// network that ships inside the `nsfwjs` npm package (MIT), loaded from disk, nothing fetched.
//
// These are not the Inception-v3 ImageNet features of official FID/KID (those weights cannot be
// downloaded here). nsfwjs's networks are ImageNet-initialised and fine-tuned to tell drawings,
// hentai, neutral photos, porn and sexy photos apart, so their features separate illustration
// styles and photos well, which is what a style model's quality is about. A score is comparable
// only with scores from the same network, never with published FID/KID numbers. See docs/score.md.
//
// Both sides go through the same path: 8-bit RGB -> sharp resize to the network input (bicubic,
// centre crop when not square) -> [0, 1] (as nsfwjs feeds its models) -> features.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tfjs from '@tensorflow/tfjs';
import sharp from 'sharp';
import type { RgbImage } from '../../images/tensor-image.ts';
import { tf } from '../../model/tf.ts';
import type { FeatureMatrix } from './kid.ts';

export interface FeatureNetwork {
  /** What outputs and docs call the features, and the score made from them. */
  id: string;
  scoreName: string;
  description: string;
  /** Folder under nsfwjs/dist/models and its weight shard count. */
  folder: string;
  shards: number;
  inputSize: number;
  /** The layer whose output is the pooled feature vector. */
  layer: string;
  dims: number;
}

export const FEATURE_NETWORKS = {
  'nsfw-mobilenet-v2': {
    id: 'nsfw-mobilenet-v2',
    scoreName: 'KID-nsfwMNv2',
    description: 'nsfwjs 4.4 MobileNetV2, 1280-d global average pool at 224x224',
    folder: 'mobilenet_v2',
    shards: 1,
    inputSize: 224,
    layer: 'flatten_1',
    dims: 1280,
  },
  'nsfw-inception-v3': {
    id: 'nsfw-inception-v3',
    scoreName: 'KID-nsfwIncV3',
    description: 'nsfwjs 4.4 InceptionV3, 2048-d global average pool at 299x299',
    folder: 'inception_v3',
    shards: 6,
    inputSize: 299,
    layer: 'flatten_1',
    dims: 2048,
  },
} as const satisfies Record<string, FeatureNetwork>;

export type FeatureNetworkId = keyof typeof FEATURE_NETWORKS;
/** About 9x cheaper than InceptionV3 on wasm (docs/benchmarks.md), so every snapshot can be scored. */
export const DEFAULT_FEATURE_NETWORK: FeatureNetworkId = 'nsfw-mobilenet-v2';

export function featureNetwork(id: string): FeatureNetwork {
  const network = (FEATURE_NETWORKS as Record<string, FeatureNetwork>)[id];
  if (!network) {
    throw new RangeError(
      `unknown feature network "${id}" (known: ${Object.keys(FEATURE_NETWORKS).join(', ')})`,
    );
  }
  return network;
}

/** Images per forward pass: large enough to keep wasm busy, small enough for its heap at 299 px. */
const BATCH = 16;
const require = createRequire(import.meta.url);

/** nsfwjs ships each model as a UMD bundle holding the model JSON, and base64 weight shards. */
function loadBundled(network: FeatureNetwork): tfjs.io.ModelArtifacts {
  // `nsfwjs` resolves to dist/cjs/index.js; the bundles are in dist/models/<folder>.
  const dir = join(dirname(require.resolve('nsfwjs')), '..', 'models', network.folder);
  const json = require(join(dir, 'model.min.js')) as {
    modelTopology: object;
    weightsManifest: Array<{ weights: tfjs.io.WeightsManifestEntry[] }>;
  };
  const shards: Buffer[] = [];
  for (let i = 1; i <= network.shards; i++) {
    const shard = require(join(dir, `group1-shard${i}of${network.shards}.min.js`)) as
      | string
      | { default: string };
    shards.push(Buffer.from(typeof shard === 'string' ? shard : shard.default, 'base64'));
  }
  const weights = Buffer.concat(shards);
  return {
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest.flatMap((group) => group.weights),
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
  };
}

export class FeatureExtractor {
  private constructor(
    readonly network: FeatureNetwork,
    private readonly model: tfjs.LayersModel,
  ) {}

  /** Loads the network on the active backend (a few hundred ms; the weights are 3.5 to 29 MB). */
  static async load(id: string = DEFAULT_FEATURE_NETWORK): Promise<FeatureExtractor> {
    const network = featureNetwork(id);
    const full = await tfjs.loadLayersModel(tfjs.io.fromMemory(loadBundled(network)));
    const pooled = tfjs.model({ inputs: full.inputs, outputs: full.getLayer(network.layer).output });
    return new FeatureExtractor(network, pooled);
  }

  /** One image as the network's input: RGB resized to inputSize x inputSize, values in [0, 1]. */
  async prepare(image: RgbImage): Promise<Float32Array> {
    const size = this.network.inputSize;
    const data = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
      .resize(size, size, { fit: 'cover', kernel: 'cubic' })
      .raw()
      .toBuffer();
    const out = new Float32Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = data[i] / 255;
    return out;
  }

  /** Feature vectors of `images`, in order. */
  async features(images: RgbImage[]): Promise<FeatureMatrix> {
    const { dims, inputSize } = this.network;
    const values = new Float32Array(images.length * dims);
    const perImage = inputSize * inputSize * 3;
    for (let start = 0; start < images.length; start += BATCH) {
      const batch = images.slice(start, start + BATCH);
      const pixels = new Float32Array(batch.length * perImage);
      for (const [i, image] of batch.entries()) pixels.set(await this.prepare(image), i * perImage);
      const input = tf.tensor4d(pixels, [batch.length, inputSize, inputSize, 3]);
      const output = this.model.predict(input) as tf.Tensor;
      try {
        values.set(await output.data(), start * dims);
      } finally {
        tf.dispose([input, output]);
      }
    }
    return { count: images.length, dims, values };
  }

  dispose(): void {
    this.model.dispose();
  }
}

const loaded = new Map<string, Promise<FeatureExtractor>>();

/** One extractor per network and process, loaded on first use (the worker scores many snapshots). */
export function sharedFeatureExtractor(id: string = DEFAULT_FEATURE_NETWORK): Promise<FeatureExtractor> {
  let extractor = loaded.get(id);
  if (!extractor) {
    extractor = FeatureExtractor.load(id);
    extractor.catch(() => loaded.delete(id));
    loaded.set(id, extractor);
  }
  return extractor;
}
