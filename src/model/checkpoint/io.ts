// Loading and saving checkpoint tensors (see format.ts for the format itself). The format's
// tfjs-free modules are re-exported here, so model code imports the checkpoint API from one place.

import { disposeParams, type ParamStore } from '../params.ts';
import { tf } from '../tf.ts';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  type Checkpoint,
  CheckpointError,
  type CheckpointToSave,
  EXACT_BUFFER,
  formatShape,
  type LoadOptions,
  listNames,
  NETWORK_NAMES,
  type NetworkName,
  type Networks,
  type SaveOptions,
  sameShape,
} from './format.ts';
import { withCheckpointFile } from './info.ts';
import { tfShapeOf, tfToTorch, torchToTf } from './layout.ts';
import { parseCheckpointMeta, parseModelConfig } from './metadata.ts';
import {
  type FloatWriteDType,
  type SafetensorsReader,
  type TensorEntry,
  type TensorSpec,
  writeSafetensorsStreamed,
} from './safetensors.ts';
import { discriminatorTorchShapes, generatorTorchShapes, type NetworkTensors } from './tensors.ts';

export * from './format.ts';
export { inferChannelBaseMax, inferConfig } from './infer.ts';
export { readCheckpointInfo, withCheckpointFile } from './info.ts';
export { parseCheckpointMeta, parseModelConfig } from './metadata.ts';
export {
  discriminatorTorchShapes,
  generatorTorchShapes,
  type NetworkTensors,
  splitByNetwork,
} from './tensors.ts';

async function loadNetwork(
  reader: SafetensorsReader,
  group: NetworkTensors<TensorEntry>,
): Promise<ParamStore> {
  const params: ParamStore = new Map();
  try {
    for (const [name, entry] of group.tensors) {
      const { data } = await reader.readFloat32(entry.name);
      params.set(
        name,
        tf.tensor(torchToTf(name, entry.shape, data), tfShapeOf(name, entry.shape), 'float32'),
      );
    }
  } catch (err) {
    disposeParams(params);
    throw err;
  }
  return params;
}

async function loadSelected(
  path: string,
  choose: (present: NetworkName[]) => readonly NetworkName[],
): Promise<Checkpoint> {
  return withCheckpointFile(path, async (reader, layout) => {
    const chosen = choose(NETWORK_NAMES.filter((n) => layout.groups.has(n)));
    const ckpt: Checkpoint = { path, config: layout.config, meta: layout.meta };
    try {
      for (const network of NETWORK_NAMES) {
        const group = layout.groups.get(network);
        if (group && chosen.includes(network)) ckpt[network] = await loadNetwork(reader, group);
      }
    } catch (err) {
      disposeCheckpoint(ckpt);
      throw err;
    }
    return ckpt;
  });
}

/**
 * Loads a checkpoint: each tensor is read from disk once, converted to the tfjs layout and turned
 * into a tf.Tensor, so the file is never held in memory as a whole.
 */
export async function loadCheckpoint(path: string, opts: LoadOptions = {}): Promise<Checkpoint> {
  return loadSelected(path, () => opts.networks ?? NETWORK_NAMES);
}

/** Loads only the network that makes images: G_ema when the file has it, else G. */
export async function loadImageGenerator(path: string): Promise<Checkpoint> {
  return loadSelected(path, (present) => [present.includes('G_ema') ? 'G_ema' : 'G']);
}

/** The network that makes images: G_ema when present, else G. */
export function generatorParams(ckpt: Networks & { path?: string }): ParamStore {
  const params = ckpt.G_ema ?? ckpt.G;
  if (!params)
    throw new CheckpointError(`${ckpt.path ?? 'checkpoint'}: no generator (G_ema or G) was loaded`);
  return params;
}

export function disposeCheckpoint(ckpt: Networks): void {
  for (const network of NETWORK_NAMES) {
    const params = ckpt[network];
    if (params) disposeParams(params);
    ckpt[network] = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

/** Storage type of one tensor: see SaveOptions.dtype. */
function storageDType(name: string, torchShape: number[], requested: FloatWriteDType): FloatWriteDType {
  return torchShape.length >= 2 && !EXACT_BUFFER.test(name) ? requested : 'F32';
}

function checkParamStore(
  params: ParamStore,
  expected: Map<string, number[]>,
  network: NetworkName,
  path: string,
): void {
  const where = `cannot save ${path}: ${network}`;
  const missing = [...expected.keys()].filter((name) => !params.has(name));
  if (missing.length > 0) throw new CheckpointError(`${where} lacks parameter(s) ${listNames(missing)}`);
  const unexpected = [...params.keys()].filter((name) => !expected.has(name));
  if (unexpected.length > 0)
    throw new CheckpointError(`${where} has unknown parameter(s) ${listNames(unexpected)}`);
  for (const [name, torchShape] of expected) {
    const tensor = params.get(name)!;
    const tfShape = tfShapeOf(name, torchShape);
    if (!sameShape(tensor.shape, tfShape)) {
      throw new CheckpointError(
        `${where} parameter ${name} has shape ${formatShape(tensor.shape)} but the config needs ${formatShape(tfShape)}`,
      );
    }
    if (tensor.dtype !== 'float32')
      throw new CheckpointError(`${where} parameter ${name} is ${tensor.dtype}, not float32`);
  }
}

/**
 * Writes a checkpoint atomically (temporary file, then rename). Tensors are downloaded one at a
 * time with `await data()` (the WebGPU backend forbids synchronous reads) and stored in PyTorch
 * layouts under `G_ema.`/`G.`/`D.` names.
 */
export async function saveCheckpoint(
  path: string,
  ckpt: CheckpointToSave,
  opts: SaveOptions = {},
): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const config = parseModelConfig(ckpt.config, `cannot save ${path}`);
  const meta = parseCheckpointMeta(ckpt.meta, `cannot save ${path}`);
  if (!ckpt.G_ema && !ckpt.G)
    throw new CheckpointError(`cannot save ${path}: no generator (G_ema or G) given`);
  const specs: TensorSpec[] = [];
  const sources = new Map<string, { name: string; tensor: tf.Tensor }>();
  for (const network of NETWORK_NAMES) {
    const params = ckpt[network];
    if (!params) continue;
    if (network === 'D' && !config.D)
      throw new CheckpointError(`cannot save ${path}: D given but config.D is missing`);
    const expected = network === 'D' ? discriminatorTorchShapes(config.D!) : generatorTorchShapes(config.G);
    checkParamStore(params, expected, network, path);
    for (const [name, torchShape] of expected) {
      const fullName = `${network}.${name}`;
      specs.push({ name: fullName, shape: torchShape, dtype: storageDType(name, torchShape, dtype) });
      sources.set(fullName, { name, tensor: params.get(name)! });
    }
  }
  const metadata = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    config: JSON.stringify(config),
    meta: JSON.stringify(meta),
  };
  const torchValues = async (spec: TensorSpec): Promise<Float32Array> => {
    const { name, tensor } = sources.get(spec.name)!;
    const values = (await tensor.data()) as Float32Array;
    return tfToTorch(name, tensor.shape, values).data;
  };
  try {
    await writeSafetensorsStreamed(path, specs, torchValues, metadata);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code) {
      throw new CheckpointError(`cannot write checkpoint ${path}: ${(err as Error).message}`, undefined, err);
    }
    throw err;
  }
}
