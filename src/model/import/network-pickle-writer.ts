// Writing NVIDIA network pickles (what stylegan2-ada-pytorch's pickle.dump of a training snapshot
// holds): torch_utils.persistence module records whose state has `_parameters`/`_buffers`/
// `_modules`, tensors through _rebuild_tensor_v2 with each storage a nested legacy torch.save
// stream. Used to build importer inputs for tests and for `npm run bench -- import`.
import { EXACT_BUFFER } from '../checkpoint/format.ts';
import {
  type ApplyNode,
  apply,
  PersistentIdNode,
  type PickleNode,
  type PickleProtocol,
  PySetNode,
  pickleDump,
  pyFloat,
  pyGlobal,
  pyTuple,
} from './pickle-writer.ts';
import { contiguousStrides, TORCH_MAGIC_NUMBER } from './torch-pickle.ts';
import { orderedDictNode } from './torch-save.ts';

/** A float32 tensor in PyTorch layout. */
export interface TorchArray {
  shape: number[];
  data: Float32Array;
}

export function bytesOf(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/**
 * A legacy torch.save stream of one float32 storage: what torch.storage._load_from_bytes receives
 * when a plain pickle carries a tensor.
 */
export function legacyStorageStream(values: Float32Array, key = '140000000000'): Uint8Array {
  const header = [
    TORCH_MAGIC_NUMBER,
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

/** A torch.nn.Module to pickle: its tensors, submodules and other attributes. */
export interface ModuleNode {
  className: string;
  parameters: Array<[string, PickleNode]>;
  buffers: Array<[string, PickleNode]>;
  modules: Map<string, ModuleNode>;
  attributes: Map<string, PickleNode>;
}

function moduleNode(className: string): ModuleNode {
  return { className, parameters: [], buffers: [], modules: new Map(), attributes: new Map() };
}

/**
 * Builds the module tree that holds the given dotted tensor names (official names; resample
 * filters, constant noise and w_avg become buffers, everything else parameters).
 */
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
    if (EXACT_BUFFER.test(name)) module.buffers.push([leaf, inlineTensorNode(array)]);
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

/** What we put where torch_utils.persistence keeps a module's Python source. */
const MODULE_SOURCE = '# module source not recorded (network pickle written by facestyle)\n';

/**
 * The persistence record `_reconstruct_persistent_obj(meta)` for a module tree. `moduleSource` is
 * the `module_src` Python would exec() on load (the importer never looks at it).
 */
export function persistentModuleNode(module: ModuleNode, moduleSource = MODULE_SOURCE): ApplyNode {
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
        [...module.modules].map(
          ([name, child]) => [name, persistentModuleNode(child, moduleSource)] as const,
        ),
      ),
    ],
    ...module.attributes,
  ]);
  const meta = new Map<PickleNode, PickleNode>([
    ['type', 'class'],
    ['version', 6],
    ['module_src', moduleSource],
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

export interface NetworkPickleOptions {
  /** The training set's resolution, as training_set_kwargs records it. */
  resolution: number;
  protocol?: PickleProtocol;
  /** `module_src` of every persistence record. */
  moduleSource?: string;
}

/** pickle.dump(dict(training_set_kwargs, G, D, G_ema, augment_pipe)) as stylegan2-ada-pytorch writes it. */
export function networkPickle(parts: NetworkPickleParts, opts: NetworkPickleOptions): Buffer {
  const snapshot = new Map<PickleNode, PickleNode>([
    [
      'training_set_kwargs',
      new Map<PickleNode, PickleNode>([
        ['class_name', 'training.dataset.ImageFolderDataset'],
        ['resolution', opts.resolution],
        ['xflip', true],
      ]),
    ],
  ]);
  for (const key of ['G', 'D', 'G_ema'] as const) {
    const module = parts[key];
    if (module) snapshot.set(key, persistentModuleNode(module, opts.moduleSource));
  }
  snapshot.set('augment_pipe', null);
  return pickleDump(snapshot, opts.protocol ?? 4);
}

export interface GeneratorRecordOptions {
  zDim: number;
  mappingLayers: number;
  cDim?: number;
  /** Default 256; null for no clamping. */
  convClamp?: number | null;
  /** The mapping network's learning-rate multiplier (its bias_gain; default 0.01). */
  mappingLrMultiplier?: number;
}

/** Marks a module tree the way NVIDIA's Generator records itself (c_dim, init kwargs, conv_clamp, gains). */
export function decorateGenerator(root: ModuleNode, opts: GeneratorRecordOptions): ModuleNode {
  root.attributes.set('c_dim', opts.cDim ?? 0);
  root.attributes.set(
    '_init_kwargs',
    apply(pyGlobal('dnnlib.util', 'EasyDict'), [], {
      newObject: true,
      dictItems: [
        ['z_dim', opts.zDim],
        [
          'mapping_kwargs',
          apply(pyGlobal('dnnlib.util', 'EasyDict'), [], {
            newObject: true,
            dictItems: [['num_layers', opts.mappingLayers]],
          }),
        ],
      ],
    }),
  );
  submoduleOf(root, 'synthesis.b4.conv1').attributes.set(
    'conv_clamp',
    opts.convClamp === undefined ? 256 : opts.convClamp,
  );
  submoduleOf(root, 'synthesis.b4.conv1').attributes.set('act_gain', numpyFloat64(Math.SQRT2));
  submoduleOf(root, 'mapping.fc0').attributes.set('bias_gain', pyFloat(opts.mappingLrMultiplier ?? 0.01));
  return root;
}

export interface DiscriminatorRecordOptions {
  mbstdGroupSize: number;
  /** Default 256; null for no clamping. */
  convClamp?: number | null;
}

/** Marks a module tree the way NVIDIA's Discriminator records itself (c_dim, mbstd group, conv_clamp). */
export function decorateDiscriminator(root: ModuleNode, opts: DiscriminatorRecordOptions): ModuleNode {
  root.attributes.set('c_dim', 0);
  submoduleOf(root, 'b4.mbstd').attributes.set('group_size', opts.mbstdGroupSize);
  submoduleOf(root, 'b4.mbstd').attributes.set('num_channels', 1);
  submoduleOf(root, 'b4.conv').attributes.set(
    'conv_clamp',
    opts.convClamp === undefined ? 256 : opts.convClamp,
  );
  return root;
}
