// Finding the network tensors in an unpickled file. NVIDIA network pickles hold module objects
// (torch_utils.persistence records, or plain torch.nn modules) whose state has `_parameters`,
// `_buffers` and `_modules`; torch.save files hold state_dicts, bare or under network keys
// (NVIDIA `G_ema`/`G`/`D`, rosinality `g_ema`/`g`/`d` plus `latent_avg`). Optimizers, dataset
// settings and augmentation pipelines next to them are left alone.
import { CheckpointError } from '../checkpoint/io.ts';
import type { DiscriminatorConfig, GeneratorConfig } from '../config.ts';
import { NotANetworkPickleError, PyDict, PyObject, PySet } from './pickle.ts';
import { TorchTensor } from './torch-pickle.ts';

const NETWORK_KEYS = ['G_ema', 'G', 'D', 'g_ema', 'g', 'd'];
/** rosinality keeps the generator's mean w beside the networks. */
const LOOSE_TENSOR_KEYS = ['latent_avg'];

/** Settings a network pickle records in its modules, which tensor shapes cannot show. */
export interface ConfigOverrides {
  G?: Partial<Pick<GeneratorConfig, 'convClamp' | 'mappingLrMultiplier'>>;
  D?: Partial<Pick<DiscriminatorConfig, 'convClamp' | 'mbstdGroupSize'>>;
}

export interface NetworkState {
  /** Tensors by full name (network key prefix included, as the file has them). */
  tensors: Map<string, TorchTensor>;
  overrides: ConfigOverrides;
  /** What the caller may want to know about the file (kept in the checkpoint's metadata). */
  notes: string[];
}

function moduleState(value: unknown): PyDict | undefined {
  if (!(value instanceof PyObject) || !(value.state instanceof PyDict)) return undefined;
  const state = value.state;
  return state.entries.has('_parameters') || state.entries.has('_modules') ? state : undefined;
}

/**
 * Module records nest about three levels per module (object, state, `_modules`); the deepest
 * StyleGAN2 pickle reaches about 20. Far deeper nesting is a file built to exhaust the walk.
 */
export const MAX_STATE_DEPTH = 256;

interface PendingValue {
  value: unknown;
  prefix: string;
  depth: number;
}

/**
 * Collects the tensors under `root`, naming each by its path (`prefix` + keys joined by dots).
 * Iterative, so nesting cannot exhaust the call stack, and each container is walked once: a
 * pickle's memo lets a small file share children at every level (2^64 paths in 1.6 KB) or hold
 * itself. A shared container keeps the name of the first path that reached it.
 */
function addTensors(root: unknown, rootPrefix: string, out: Map<string, TorchTensor>, source: string): void {
  const visited = new Set<unknown>();
  const pending: PendingValue[] = [{ value: root, prefix: rootPrefix, depth: 0 }];
  // Children are pushed in reverse so that they are walked (and named) in the file's order.
  const pushChildren = (children: PendingValue[]) => {
    for (let i = children.length - 1; i >= 0; i--) pending.push(children[i]);
  };
  for (let next = pending.pop(); next; next = pending.pop()) {
    const { value, prefix, depth } = next;
    if (value instanceof TorchTensor) {
      out.set(prefix.slice(0, -1), value);
      continue;
    }
    if (!(value instanceof PyObject || value instanceof PyDict) || visited.has(value)) continue;
    visited.add(value);
    if (depth >= MAX_STATE_DEPTH)
      throw new NotANetworkPickleError(source, `its objects nest more than ${MAX_STATE_DEPTH} levels deep`);
    const state = moduleState(value);
    if (state) {
      pushChildren(moduleChildren(state, prefix, depth + 1));
    } else if (value instanceof PyDict) {
      const children: PendingValue[] = [];
      for (const [key, child] of value.entries)
        if (typeof key === 'string')
          children.push({ value: child, prefix: `${prefix}${key}.`, depth: depth + 1 });
      pushChildren(children);
    }
  }
}

/** A module's own tensors (as tensor leaves) and its submodules, by name. */
function moduleChildren(state: PyDict, prefix: string, depth: number): PendingValue[] {
  const children: PendingValue[] = [];
  const nonPersistent = state.get('_non_persistent_buffers_set');
  const skipped = new Set(nonPersistent instanceof PySet ? nonPersistent.items : []);
  for (const field of ['_parameters', '_buffers']) {
    const tensors = state.get(field);
    if (!(tensors instanceof PyDict)) continue;
    for (const [name, tensor] of tensors.entries) {
      if (tensor instanceof TorchTensor && typeof name === 'string' && !skipped.has(name))
        children.push({ value: tensor, prefix: `${prefix}${name}.`, depth });
    }
  }
  const modules = state.get('_modules');
  if (modules instanceof PyDict) {
    for (const [name, child] of modules.entries) {
      if (moduleState(child) && typeof name === 'string')
        children.push({ value: child, prefix: `${prefix}${name}.`, depth });
    }
  }
  return children;
}

function describe(value: unknown): string {
  if (value instanceof PyObject) return `a ${value.className} object`;
  if (value instanceof PyDict) return 'a dict';
  if (Array.isArray(value)) return 'a list or tuple';
  return `a ${value === null ? 'None' : typeof value} value`;
}

/** A submodule by path (`['synthesis', 'b4', 'conv1']`) of a pickled module, or undefined. */
function submodule(root: unknown, path: string[]): PyDict | undefined {
  let state = moduleState(root);
  for (const name of path) {
    const modules = state?.get('_modules');
    state = modules instanceof PyDict ? moduleState(modules.get(name)) : undefined;
  }
  return state;
}

function numberOrNull(value: unknown): number | null | undefined {
  if (value === null) return null;
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** Reads the settings NVIDIA's modules keep as attributes, and refuses variants we cannot run. */
function readOverrides(root: PyDict, source: string, notes: string[]): ConfigOverrides {
  const overrides: ConfigOverrides = {};
  for (const key of ['G_ema', 'G', 'D']) {
    const cDim = moduleState(root.get(key))?.get('c_dim');
    if (typeof cDim === 'number' && cDim > 0) {
      throw new CheckpointError(
        `${source}: ${key} is a conditional model (c_dim=${cDim}); only unconditional models are supported`,
        'use an unconditional StyleGAN2 network pickle',
      );
    }
  }
  const generator = root.get('G_ema') ?? root.get('G');
  if (submodule(generator, ['synthesis', 'input'])) {
    throw new CheckpointError(
      `${source}: is a StyleGAN3 (alias-free, -T or -R) network pickle, which this StyleGAN2 implementation cannot run`,
      'use a StyleGAN2 pickle (stylegan2-ada-pytorch, or stylegan3 trained with --cfg=stylegan2)',
    );
  }
  const gClamp = numberOrNull(submodule(generator, ['synthesis', 'b4', 'conv1'])?.get('conv_clamp'));
  const lrMultiplier = numberOrNull(submodule(generator, ['mapping', 'fc0'])?.get('bias_gain'));
  if (gClamp !== undefined || typeof lrMultiplier === 'number') {
    overrides.G = {};
    if (gClamp !== undefined) overrides.G.convClamp = gClamp;
    if (typeof lrMultiplier === 'number' && lrMultiplier > 0) overrides.G.mappingLrMultiplier = lrMultiplier;
  }
  const discriminator = root.get('D');
  if (discriminator !== undefined) {
    overrides.D = {};
    const dClamp = numberOrNull(submodule(discriminator, ['b4', 'conv'])?.get('conv_clamp'));
    if (dClamp !== undefined) overrides.D.convClamp = dClamp;
    const group = numberOrNull(submodule(discriminator, ['b4', 'mbstd'])?.get('group_size'));
    if (typeof group === 'number' && Number.isInteger(group) && group > 0) overrides.D.mbstdGroupSize = group;
    else if (group === null)
      notes.push(
        'D used minibatch-std groups of the whole batch (group_size None); the default group size is used',
      );
  }
  return overrides;
}

/**
 * Refuses tensors that claim more elements than the file's storages hold. A tensor is a strided
 * view: with stride 0 (or many tensors over one storage) a few bytes can claim any shape, and
 * reading it would allocate that shape in float32. Real files view each storage element about
 * once, so what import allocates stays about the size of the tensor data the file really holds.
 */
export function checkTensorsFitStorages(tensors: ReadonlyMap<string, TorchTensor>, source: string): void {
  const storageElements = new Map<TorchTensor['storage'], number>();
  let claimed = 0;
  for (const [name, tensor] of tensors) {
    if (tensor.numel > tensor.storage.numel)
      throw new NotANetworkPickleError(
        source,
        `tensor ${name} claims ${tensor.numel} elements of a storage that holds ${tensor.storage.numel}`,
      );
    claimed += tensor.numel;
    storageElements.set(tensor.storage, tensor.storage.numel);
  }
  let held = 0;
  for (const count of storageElements.values()) held += count;
  if (claimed > 2 * held)
    throw new NotANetworkPickleError(
      source,
      `its tensors claim ${claimed} elements from storages that hold ${held} (views overlapping over and over)`,
    );
}

/** The network tensors (and, for network pickles, their recorded settings) of an unpickled file. */
export function findNetworkState(root: unknown, source: string): NetworkState {
  const tensors = new Map<string, TorchTensor>();
  const notes: string[] = [];
  let overrides: ConfigOverrides = {};
  if (moduleState(root)) {
    addTensors(root, '', tensors, source);
  } else if (root instanceof PyDict) {
    const networkKeys = NETWORK_KEYS.filter((k) => root.entries.has(k));
    if (networkKeys.length === 0) addTensors(root, '', tensors, source);
    for (const key of networkKeys) addTensors(root.get(key), `${key}.`, tensors, source);
    for (const key of LOOSE_TENSOR_KEYS) {
      const tensor = root.get(key);
      if (networkKeys.length > 0 && tensor instanceof TorchTensor) tensors.set(key, tensor);
    }
    if (networkKeys.some((k) => moduleState(root.get(k)))) overrides = readOverrides(root, source, notes);
  } else {
    throw new CheckpointError(
      `${source}: holds ${describe(root)}, not a state_dict or a network pickle`,
      'expected a network .pkl (G, D, G_ema) or torch.save of a state_dict',
    );
  }
  if (tensors.size === 0) {
    throw new CheckpointError(
      `${source}: no tensors found (it holds ${describe(root)} without network weights)`,
      'expected a network .pkl (G, D, G_ema) or torch.save of a state_dict',
    );
  }
  checkTensorsFitStorages(tensors, source);
  return { tensors, overrides, notes };
}
