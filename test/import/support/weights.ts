// Test inputs in the formats the importer reads, built from the parity fixture's tensors:
// NVIDIA network pickles (torch_utils.persistence module records whose state holds
// `_parameters`/`_buffers`/`_modules`, tensors through _rebuild_tensor_v2 with each storage a
// nested legacy torch.save stream, as stylegan2-ada-pytorch's pickle.dump writes them) and
// torch.save archives of arbitrary structures.
import { fileURLToPath } from 'node:url';
import {
  type ApplyNode,
  apply,
  PersistentIdNode,
  type PickleNode,
  PySetNode,
  pickleDump,
  pyFloat,
  pyGlobal,
  pyTuple,
} from '../../../src/model/import/pickle-writer.ts';
import { orderedDictNode } from '../../../src/model/import/torch-save.ts';
import { SafetensorsReader } from '../../../src/model/safetensors.ts';

export const FIXTURE_DIR = fileURLToPath(new URL('../../fixtures/sg2_tiny/', import.meta.url));
export const MODEL = `${FIXTURE_DIR}model.safetensors`;
export const STYLE = `${FIXTURE_DIR}style.safetensors`;
export const G_STATE_DICT = `${FIXTURE_DIR}G_state_dict.pt`;

export interface TorchArray {
  shape: number[];
  data: Float32Array;
}

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

const TORCH_MAGIC = 0x1950a86a20f9469cfc6cn;

function contiguousStrides(shape: readonly number[]): number[] {
  const strides: number[] = [];
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides.unshift(step);
    step *= shape[i];
  }
  return strides;
}

function bytesOf(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/**
 * A legacy torch.save stream of one float32 storage: what torch.storage._load_from_bytes receives
 * when a plain pickle carries a tensor.
 */
export function legacyStorageStream(values: Float32Array, key = '140000000000'): Uint8Array {
  const header = [
    TORCH_MAGIC,
    1001,
    new Map<PickleNode, PickleNode>([
      ['protocol_version', 1001],
      ['little_endian', true],
    ]),
  ];
  const storage = pickleDump(
    new PersistentIdNode(
      pyTuple('storage', pyGlobal('torch', 'FloatStorage'), key, 'cpu', values.length, null),
    ),
    2,
  );
  const count = Buffer.alloc(8);
  count.writeBigInt64LE(BigInt(values.length));
  return Buffer.concat([
    ...header.map((v) => pickleDump(v, 2)),
    storage,
    pickleDump([key], 2),
    count,
    bytesOf(values),
  ]);
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
    TORCH_MAGIC,
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

/** A tensor as plain pickle carries it (storage inline as a nested legacy stream). */
export function inlineTensorNode(array: TorchArray): ApplyNode {
  const storage = apply(pyGlobal('torch.storage', '_load_from_bytes'), [legacyStorageStream(array.data)]);
  return apply(pyGlobal('torch._utils', '_rebuild_tensor_v2'), [
    storage,
    0,
    pyTuple(...array.shape),
    pyTuple(...contiguousStrides(array.shape)),
    false,
    orderedDictNode([]),
  ]);
}

function parameterNode(array: TorchArray): ApplyNode {
  return apply(pyGlobal('torch._utils', '_rebuild_parameter'), [
    inlineTensorNode(array),
    false,
    orderedDictNode([]),
  ]);
}

const BUFFER = /(^|\.)(resample_filter|noise_const|w_avg)$/;

interface ModuleNode {
  className: string;
  parameters: Array<[string, PickleNode]>;
  buffers: Array<[string, PickleNode]>;
  modules: Map<string, ModuleNode>;
  attributes: Map<string, PickleNode>;
}

function moduleNode(className: string): ModuleNode {
  return { className, parameters: [], buffers: [], modules: new Map(), attributes: new Map() };
}

/** Builds the module tree that holds the given dotted tensor names. */
export function moduleTree(className: string, tensors: Map<string, TorchArray>): ModuleNode {
  const root = moduleNode(className);
  for (const [name, array] of tensors) {
    const parts = name.split('.');
    let module = root;
    for (const part of parts.slice(0, -1)) {
      let child = module.modules.get(part);
      if (!child) {
        child = moduleNode(`Module_${part.replace(/\d+$/, '')}`);
        module.modules.set(part, child);
      }
      module = child;
    }
    const leaf = parts.at(-1)!;
    if (BUFFER.test(name)) module.buffers.push([leaf, inlineTensorNode(array)]);
    else module.parameters.push([leaf, parameterNode(array)]);
  }
  return root;
}

/** A submodule by dotted path, created empty when missing (for attribute-only modules like mbstd). */
export function submoduleOf(root: ModuleNode, path: string): ModuleNode {
  let module = root;
  for (const part of path.split('.')) {
    let child = module.modules.get(part);
    if (!child) {
      child = moduleNode(`Module_${part}`);
      module.modules.set(part, child);
    }
    module = child;
  }
  return module;
}

/** numpy.float64(value), as NVIDIA modules keep gains. */
export function numpyFloat64(value: number): ApplyNode {
  const dtype = apply(pyGlobal('numpy', 'dtype'), ['f8', false, true], {
    state: pyTuple(3, '<', null, null, null, -1, -1, 0),
  });
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleLE(value);
  return apply(pyGlobal('numpy.core.multiarray', 'scalar'), [dtype, bytes]);
}

/** The persistence record `_reconstruct_persistent_obj(meta)` for a module tree. */
export function persistentModuleNode(module: ModuleNode): ApplyNode {
  const emptyHooks = () => orderedDictNode([]);
  const state = new Map<PickleNode, PickleNode>([
    ['training', false],
    ['_parameters', orderedDictNode(module.parameters)],
    ['_buffers', orderedDictNode(module.buffers)],
    ['_non_persistent_buffers_set', new PySetNode([])],
    ['_backward_hooks', emptyHooks()],
    ['_forward_hooks', emptyHooks()],
    ['_forward_pre_hooks', emptyHooks()],
    ['_state_dict_hooks', emptyHooks()],
    ['_load_state_dict_pre_hooks', emptyHooks()],
    [
      '_modules',
      orderedDictNode(
        [...module.modules].map(([name, child]) => [name, persistentModuleNode(child)] as const),
      ),
    ],
    ...module.attributes,
  ]);
  const meta = new Map<PickleNode, PickleNode>([
    ['type', 'class'],
    ['version', 6],
    // Python would exec() this on load; the importer must never look at it.
    ['module_src', 'import os\nos.system("touch /tmp/facestyle-pwned")\n'],
    ['class_name', module.className],
    ['state', state],
  ]);
  return apply(pyGlobal('torch_utils.persistence', '_reconstruct_persistent_obj'), [meta]);
}

export interface NetworkPickleParts {
  G_ema?: ModuleNode;
  G?: ModuleNode;
  D?: ModuleNode;
}

/** pickle.dump(dict(training_set_kwargs, G, D, G_ema, augment_pipe)) as stylegan2-ada-pytorch writes it. */
export function networkPickle(parts: NetworkPickleParts, protocol: 2 | 3 | 4 = 4): Buffer {
  const snapshot = new Map<PickleNode, PickleNode>([
    [
      'training_set_kwargs',
      new Map<PickleNode, PickleNode>([
        ['class_name', 'training.dataset.ImageFolderDataset'],
        ['resolution', 32],
        ['xflip', true],
      ]),
    ],
  ]);
  for (const key of ['G', 'D', 'G_ema'] as const) {
    const module = parts[key];
    if (module) snapshot.set(key, persistentModuleNode(module));
  }
  snapshot.set('augment_pipe', null);
  return pickleDump(snapshot, protocol);
}

/** Marks a module tree the way NVIDIA's Generator records itself (c_dim, conv_clamp, gains). */
export function decorateGenerator(
  root: ModuleNode,
  opts: { cDim?: number; convClamp?: number | null } = {},
): ModuleNode {
  root.attributes.set('c_dim', opts.cDim ?? 0);
  root.attributes.set(
    '_init_kwargs',
    apply(pyGlobal('dnnlib.util', 'EasyDict'), [], {
      newObject: true,
      dictItems: [
        ['z_dim', 32],
        [
          'mapping_kwargs',
          apply(pyGlobal('dnnlib.util', 'EasyDict'), [], { newObject: true, dictItems: [['num_layers', 2]] }),
        ],
      ],
    }),
  );
  submoduleOf(root, 'synthesis.b4.conv1').attributes.set(
    'conv_clamp',
    opts.convClamp === undefined ? 256 : opts.convClamp,
  );
  submoduleOf(root, 'synthesis.b4.conv1').attributes.set('act_gain', numpyFloat64(Math.SQRT2));
  submoduleOf(root, 'mapping.fc0').attributes.set('bias_gain', pyFloat(0.01));
  return root;
}

export function decorateDiscriminator(root: ModuleNode, groupSize: number): ModuleNode {
  root.attributes.set('c_dim', 0);
  submoduleOf(root, 'b4.mbstd').attributes.set('group_size', groupSize);
  submoduleOf(root, 'b4.mbstd').attributes.set('num_channels', 1);
  submoduleOf(root, 'b4.conv').attributes.set('conv_clamp', 256);
  return root;
}
