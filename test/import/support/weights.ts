// Test inputs in the formats the importer reads, built from the parity fixture's tensors:
// NVIDIA network pickles (src/model/import/network-pickle-writer.ts, with the fixture's settings
// and a module_src that would be harmful if anything exec()ed it) and legacy torch.save files.
import { fileURLToPath } from 'node:url';
import { SafetensorsReader } from '../../../src/model/checkpoint/safetensors.ts';
import {
  bytesOf,
  type ModuleNode,
  type NetworkPickleParts,
  decorateDiscriminator as recordDiscriminator,
  decorateGenerator as recordGenerator,
  type TorchArray,
  networkPickle as writeNetworkPickle,
} from '../../../src/model/import/network-pickle-writer.ts';
import {
  type ApplyNode,
  apply,
  PersistentIdNode,
  type PickleNode,
  pickleDump,
  pyGlobal,
  pyTuple,
} from '../../../src/model/import/pickle-writer.ts';
import { contiguousStrides, TORCH_MAGIC_NUMBER } from '../../../src/model/import/torch-pickle.ts';
import { orderedDictNode } from '../../../src/model/import/torch-save.ts';

export {
  inlineTensorNode,
  legacyStorageStream,
  moduleTree,
  type TorchArray,
} from '../../../src/model/import/network-pickle-writer.ts';

export const FIXTURE_DIR = fileURLToPath(new URL('../../fixtures/sg2_tiny/', import.meta.url));
export const MODEL = `${FIXTURE_DIR}model.safetensors`;
export const STYLE = `${FIXTURE_DIR}style.safetensors`;
export const G_STATE_DICT = `${FIXTURE_DIR}G_state_dict.pt`;

/** One network's tensors from a fixture file (`G.` or `D.` prefix removed), PyTorch layout. */
export async function readNetwork(path: string, network: string): Promise<Map<string, TorchArray>> {
  const reader = await SafetensorsReader.open(path);
  try {
    const out = new Map<string, TorchArray>();
    for (const name of reader.names()) {
      if (!name.startsWith(`${network}.`)) continue;
      const { shape, data } = await reader.readFloat32(name);
      out.set(name.slice(network.length + 1), { shape, data });
    }
    return out;
  } finally {
    await reader.close();
  }
}

/** All tensors of a safetensors file as raw bytes, by name. */
export async function readAllBytes(path: string): Promise<Map<string, Buffer>> {
  const reader = await SafetensorsReader.open(path);
  try {
    const out = new Map<string, Buffer>();
    for (const name of reader.names()) out.set(name, await reader.readBytes(name));
    return out;
  } finally {
    await reader.close();
  }
}

/** A contiguous float32 tensor in a legacy torch.save stream (persistent ids carry view metadata). */
export function legacyTensorNode(key: string, shape: number[]): ApplyNode {
  const numel = shape.reduce((a, b) => a * b, 1);
  const storage = new PersistentIdNode(
    pyTuple('storage', pyGlobal('torch', 'FloatStorage'), key, 'cuda:0', numel, null),
  );
  return apply(pyGlobal('torch._utils', '_rebuild_tensor_v2'), [
    storage,
    0,
    pyTuple(...shape),
    pyTuple(...contiguousStrides(shape)),
    false,
    orderedDictNode([]),
  ]);
}

/** A legacy (pre-1.6, non-zip) torch.save file: `root` references storages by persistent id. */
export function legacyTorchSave(
  root: PickleNode,
  storages: Array<{ key: string; data: Float32Array }>,
): Buffer {
  const parts: Uint8Array[] = [
    TORCH_MAGIC_NUMBER,
    1001,
    new Map<PickleNode, PickleNode>([['little_endian', true]]),
  ].map((v) => pickleDump(v, 2));
  parts.push(
    pickleDump(root, 2),
    pickleDump(
      storages.map((s) => s.key),
      2,
    ),
  );
  for (const { data } of storages) {
    const count = Buffer.alloc(8);
    count.writeBigInt64LE(BigInt(data.length));
    parts.push(count, bytesOf(data));
  }
  return Buffer.concat(parts);
}

/** Python would exec() this on load; the importer must never look at it. */
const HOSTILE_MODULE_SOURCE = 'import os\nos.system("touch /tmp/facestyle-pwned")\n';

/** A network pickle of the fixture (a 32x32 training set), every module_src hostile. */
export function networkPickle(parts: NetworkPickleParts, protocol: 2 | 3 | 4 = 4): Buffer {
  return writeNetworkPickle(parts, { resolution: 32, protocol, moduleSource: HOSTILE_MODULE_SOURCE });
}

/** The fixture generator's records (z_dim 32, 2 mapping layers). */
export function decorateGenerator(
  root: ModuleNode,
  opts: { cDim?: number; convClamp?: number | null } = {},
): ModuleNode {
  return recordGenerator(root, { zDim: 32, mappingLayers: 2, ...opts });
}

export function decorateDiscriminator(root: ModuleNode, groupSize: number): ModuleNode {
  return recordDiscriminator(root, { mbstdGroupSize: groupSize });
}
