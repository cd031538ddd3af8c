// What PyTorch and NVIDIA's training code put into pickles, as data: the allow-list of globals a
// network pickle or torch.save file may name, storages and tensors (by reference, decoded on
// demand), and the legacy torch.save stream that plain pickles embed for every storage.
// Over 500 lines: the allow-list and the readers it admits are one trust boundary, reviewed together.
import { CheckpointError } from '../checkpoint/format.ts';
import { decodeToFloat32, type SafetensorsDType } from '../checkpoint/safetensors.ts';
import {
  appendAll,
  type GlobalBehaviour,
  isTuple,
  PickleError,
  PyDict,
  PyGlobal,
  PyObject,
  PySet,
  UnsafePickleError,
  unpickle,
} from './pickle.ts';

export type TorchDType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

const STORAGE_DTYPES: Record<string, TorchDType> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  // Raw byte storages (torch >= 2 may save one); tensors never point at them in our files.
  UntypedStorage: 'uint8',
};

export const ELEMENT_BYTES: Record<TorchDType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

const DECODABLE: Partial<Record<TorchDType, SafetensorsDType>> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  uint8: 'U8',
  bool: 'BOOL',
};

export const FLOAT_DTYPES: ReadonlySet<TorchDType> = new Set(['float32', 'float16', 'bfloat16', 'float64']);

/** The storage class a persistent id names (`torch.FloatStorage`) resolved to its dtype. */
export function storageDType(storageType: unknown): TorchDType | undefined {
  if (!(storageType instanceof PyGlobal)) return undefined;
  const match = /^torch\.(\w+Storage)$/.exec(storageType.qualifiedName);
  return match ? ownEntry(STORAGE_DTYPES, match[1]) : undefined;
}

/** One storage: a flat run of elements that tensors view. Bytes arrive when the file is read. */
export class TorchStorage {
  /** Raw little-endian bytes, at least `numel * ELEMENT_BYTES[dtype]` long once loaded. */
  bytes: Uint8Array | undefined = undefined;
  constructor(
    readonly dtype: TorchDType,
    /** The key naming the storage's data in the file (`data/<key>` in a zip). */
    readonly key: string,
    readonly numel: number,
  ) {}
}

/** A tensor as torch pickles it: a strided view into a storage. */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}

  get dtype(): TorchDType {
    return this.storage.dtype;
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
}

function isIntegerList(value: unknown): value is number[] {
  return (
    (Array.isArray(value) || isTuple(value)) &&
    (value as unknown[]).every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)
  );
}

function rebuildTensor(args: readonly unknown[], source: string): TorchTensor {
  const [storage, offset, shape, stride] = args;
  if (
    !(storage instanceof TorchStorage) ||
    typeof offset !== 'number' ||
    !isIntegerList(shape) ||
    !isIntegerList(stride) ||
    shape.length !== stride.length
  ) {
    throw new PickleError(`${source}: a tensor in the pickle has malformed storage, offset, size or stride`);
  }
  return new TorchTensor(storage, offset, [...shape], [...stride]);
}

function asTensor(value: unknown, source: string): TorchTensor {
  if (!(value instanceof TorchTensor))
    throw new PickleError(`${source}: a parameter in the pickle holds no tensor`);
  return value;
}

/** numpy scalars (NVIDIA modules keep gains as np.float64): the number when the dtype is a plain one. */
function numpyScalar(args: readonly unknown[]): unknown {
  const [dtype, data] = args;
  if (!(dtype instanceof PyObject) || !(data instanceof Uint8Array))
    return new PyObject('numpy.scalar', args);
  const code = dtype.args[0];
  const state = dtype.state;
  const bigEndian = isTuple(state) && state[1] === '>';
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const le = !bigEndian;
  const readers: Record<string, [number, () => number | bigint | boolean]> = {
    f8: [8, () => view.getFloat64(0, le)],
    f4: [4, () => view.getFloat32(0, le)],
    i8: [8, () => view.getBigInt64(0, le)],
    i4: [4, () => view.getInt32(0, le)],
    u8: [8, () => view.getBigUint64(0, le)],
    u4: [4, () => view.getUint32(0, le)],
    b1: [1, () => view.getUint8(0) !== 0],
  };
  const reader = typeof code === 'string' ? readers[code] : undefined;
  if (!reader || data.length !== reader[0]) return new PyObject('numpy.scalar', args);
  const value = reader[1]();
  return typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

const inertClass: GlobalBehaviour = {};

function dictClass(className: string): GlobalBehaviour {
  const make = (args: readonly unknown[]) => {
    const dict = new PyDict(className);
    // Protocol 0/1 style: OrderedDict([[key, value], ...]).
    const pairs = args[0];
    if (Array.isArray(pairs)) {
      for (const pair of pairs)
        if (Array.isArray(pair) && pair.length === 2) dict.entries.set(pair[0], pair[1]);
    }
    return dict;
  };
  return { call: make, construct: make };
}

function setClass(frozen: boolean): GlobalBehaviour {
  return {
    call: (args) => {
      const set = new PySet(frozen);
      const items = args[0];
      if (Array.isArray(items)) appendAll(set.items, items);
      return set;
    },
  };
}

/** Globals whose appearance identifies a file we cannot use, with what to do instead. */
const KNOWN_FOREIGN: Record<string, { message: string; hint: string }> = {
  'dnnlib.tflib.network.Network': {
    message: 'is a TensorFlow StyleGAN/StyleGAN2 pickle (dnnlib.tflib), which holds TensorFlow variables',
    hint: "convert it to PyTorch first with stylegan2-ada-pytorch's legacy.py (python legacy.py --source=... --dest=...)",
  },
};

/** Own-property lookup: a name like `constructor` must not find Object.prototype's. */
function ownEntry<T>(table: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

const MODULE_ALIASES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

/**
 * The allow-list for network pickles and torch.save files. Tensor machinery and dict-like classes
 * get implementations; module and config classes (torch.nn, NVIDIA's persistence, argparse,
 * numpy) become inert records; everything else is refused by name.
 */
export function torchGlobalResolver(
  source: string,
  readNestedStorage: (bytes: Uint8Array) => TorchStorage,
): (module: string, name: string) => GlobalBehaviour {
  const functions: Record<string, GlobalBehaviour> = {
    'collections.OrderedDict': dictClass('collections.OrderedDict'),
    'dnnlib.util.EasyDict': dictClass('dnnlib.util.EasyDict'),
    'dnnlib.EasyDict': dictClass('dnnlib.util.EasyDict'),
    'builtins.dict': dictClass('builtins.dict'),
    'builtins.set': setClass(false),
    'builtins.frozenset': setClass(true),
    'builtins.bytes': { call: (args) => (args.length === 0 ? new Uint8Array(0) : latin1Or(args)) },
    'builtins.bytearray': { call: (args) => (args.length === 0 ? new Uint8Array(0) : latin1Or(args)) },
    // How protocol 2 writes bytes: _codecs.encode(text, 'latin1').
    '_codecs.encode': { call: (args) => latin1Or(args) },
    'torch._utils._rebuild_tensor_v2': { call: (args) => rebuildTensor(args, source) },
    'torch._utils._rebuild_tensor': { call: (args) => rebuildTensor(args, source) },
    'torch._utils._rebuild_parameter': { call: (args) => asTensor(args[0], source) },
    'torch._utils._rebuild_parameter_with_state': { call: (args) => asTensor(args[0], source) },
    'torch._tensor._rebuild_from_type_v2': {
      call: ([func, , args]) => {
        if (!(func instanceof PyGlobal) || !func.behaviour.call || !isTuple(args))
          throw new PickleError(`${source}: malformed tensor subclass record in the pickle`);
        return func.behaviour.call(args);
      },
    },
    'torch.Size': { call: ([dims]) => dims },
    // Plain pickles carry each storage as a nested legacy torch.save stream.
    'torch.storage._load_from_bytes': {
      call: ([bytes]) => {
        if (!(bytes instanceof Uint8Array))
          throw new PickleError(`${source}: malformed storage record in the pickle`);
        return storageOnce(bytes);
      },
    },
    'torch_utils.persistence._reconstruct_persistent_obj': {
      call: ([meta]) => persistentObject(meta, source),
    },
    'numpy.dtype': inertClass,
    'numpy.core.multiarray.scalar': { call: numpyScalar },
    'numpy.core.multiarray._reconstruct': inertClass,
    'numpy.ndarray': inertClass,
    'numpy.core.numeric._frombuffer': inertClass,
    'copyreg._reconstructor': {
      call: ([cls, , state]) => {
        const obj = new PyObject(cls instanceof PyGlobal ? cls.qualifiedName : 'unknown');
        obj.state = state;
        return obj;
      },
    },
    'argparse.Namespace': inertClass,
    'torch.Tensor': inertClass,
    'torch._tensor.Tensor': inertClass,
    'torch.nn.parameter.Parameter': inertClass,
    'torch.device': inertClass,
  };

  // The memo lets a pickle apply one record to the same value any number of times: each value is
  // converted (copied) and each storage record parsed once, so repeats cost nothing.
  const bytesOfText = new Map<string, Uint8Array>();
  const storageOfBytes = new WeakMap<Uint8Array, TorchStorage>();
  function storageOnce(bytes: Uint8Array): TorchStorage {
    let storage = storageOfBytes.get(bytes);
    if (!storage) {
      storage = readNestedStorage(bytes);
      storageOfBytes.set(bytes, storage);
    }
    return storage;
  }

  function latin1Or(args: readonly unknown[]): Uint8Array {
    const [value] = args;
    if (typeof value === 'string') {
      let bytes = bytesOfText.get(value);
      if (!bytes) {
        bytes = latin1Bytes(value);
        bytesOfText.set(value, bytes);
      }
      return bytes;
    }
    if (value instanceof Uint8Array) return value;
    if (isIntegerList(value)) return Uint8Array.from(value);
    throw new PickleError(`${source}: malformed bytes record in the pickle`);
  }

  return (rawModule, name) => {
    const module = ownEntry(MODULE_ALIASES, rawModule) ?? rawModule.replace(/^numpy\._core\./, 'numpy.core.');
    const qualified = `${module}.${name}`;
    const known = ownEntry(functions, qualified);
    if (known) return known;
    if (module === 'torch' && (ownEntry(STORAGE_DTYPES, name) || TORCH_DTYPE_NAMES.has(name)))
      return inertClass;
    // Module classes PyTorch itself defines (Sequential, ModuleList, Linear...): their state is data.
    if (/^torch\.nn\.modules(\.\w+)+$/.test(module) && /^[A-Z]\w*$/.test(name)) return inertClass;
    const foreign = ownEntry(KNOWN_FOREIGN, qualified);
    if (foreign) throw new CheckpointError(`${source} ${foreign.message}`, foreign.hint);
    throw new UnsafePickleError(source, qualified);
  };
}

const TORCH_DTYPE_NAMES: ReadonlySet<string> = new Set([
  'float32',
  'float16',
  'bfloat16',
  'float64',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint8',
  'bool',
  'float',
  'half',
  'double',
  'long',
]);

/**
 * NVIDIA's torch_utils.persistence pickles each network module as a call to
 * `_reconstruct_persistent_obj(meta)`, where meta holds the module's source code (executed by
 * Python on load; ignored here), its class name and its instance state.
 */
function persistentObject(meta: unknown, source: string): PyObject {
  if (!(meta instanceof PyDict))
    throw new PickleError(`${source}: malformed persistent object in the pickle`);
  const className = meta.get('class_name');
  const obj = new PyObject(typeof className === 'string' ? className : 'unknown');
  obj.state = meta.get('state');
  return obj;
}

// ---------------------------------------------------------------------------------------------
// The legacy torch.save stream (`_use_new_zipfile_serialization=False`): five pickles (magic
// number, protocol version, system info, the object, the storage keys), then each storage as an
// 8-byte element count and its raw bytes. Pre-1.6 .pt files are this, and plain pickles embed one
// per storage through torch.storage._load_from_bytes.

export const TORCH_MAGIC_NUMBER = 0x1950a86a20f9469cfc6cn;
const TORCH_LEGACY_PROTOCOL = 1001;

export interface LegacyTorchStream {
  root: unknown;
  /** Offset just past the last storage. */
  end: number;
}

/** Whether `bytes` (at `start`) begins with the legacy torch.save magic-number pickle. */
export function startsWithTorchMagic(bytes: Uint8Array, start = 0): boolean {
  try {
    const { value } = unpickle(bytes, plainDataOptions('header'), start);
    return value === TORCH_MAGIC_NUMBER;
  } catch {
    return false;
  }
}

function plainDataOptions(source: string) {
  return {
    source,
    resolveGlobal: (module: string, name: string): GlobalBehaviour => {
      throw new UnsafePickleError(source, `${module}.${name}`);
    },
  };
}

function swapBytes(bytes: Uint8Array, elementBytes: number): Uint8Array {
  if (elementBytes === 1) return bytes;
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += elementBytes)
    for (let j = 0; j < elementBytes; j++) out[i + j] = bytes[i + elementBytes - 1 - j];
  return out;
}

/** Storage bytes in little-endian order, swapped when the file was written big-endian. */
export function littleEndianStorage(bytes: Uint8Array, dtype: TorchDType, bigEndian: boolean): Uint8Array {
  return bigEndian ? swapBytes(bytes, ELEMENT_BYTES[dtype]) : bytes;
}

/** Reads a legacy torch.save stream held in memory; storages are views into `bytes`. */
export function readLegacyTorchStream(bytes: Uint8Array, source: string, depth = 0): LegacyTorchStream {
  const plain = plainDataOptions(source);
  const magic = unpickle(bytes, plain);
  if (magic.value !== TORCH_MAGIC_NUMBER)
    throw new PickleError(`${source}: not a torch.save stream (no magic number)`);
  const protocol = unpickle(bytes, plain, magic.end);
  if (protocol.value !== TORCH_LEGACY_PROTOCOL)
    throw new PickleError(
      `${source}: unsupported torch.save protocol ${typeof protocol.value === 'number' ? protocol.value : 'record'}`,
    );
  const sysInfo = unpickle(bytes, plain, protocol.end);
  const bigEndian = sysInfo.value instanceof PyDict && sysInfo.value.get('little_endian') === false;

  const roots = new Map<string, TorchStorage>();
  const views: Array<{ view: TorchStorage; root: TorchStorage; offset: number }> = [];
  const persistentLoad = (pid: unknown): unknown => {
    if (!isTuple(pid)) throw new PickleError(`${source}: malformed persistent id`);
    const [kind, storageType, key, , numel, viewMetadata] = pid;
    if (kind === 'module') return storageType; // An old whole-module save: the class, as data.
    const dtype = storageDType(storageType);
    if (kind !== 'storage' || !dtype || typeof key !== 'string' || typeof numel !== 'number')
      throw new PickleError(`${source}: malformed storage reference in the pickle`);
    let root = roots.get(key);
    if (!root) {
      root = new TorchStorage(dtype, key, numel);
      roots.set(key, root);
    }
    if (isTuple(viewMetadata)) {
      const [viewKey, offset, size] = viewMetadata;
      if (typeof viewKey !== 'string' || typeof offset !== 'number' || typeof size !== 'number')
        throw new PickleError(`${source}: malformed storage view in the pickle`);
      const view = new TorchStorage(dtype, viewKey, size);
      views.push({ view, root, offset });
      return view;
    }
    return root;
  };
  const resolveGlobal = torchGlobalResolver(source, (nested) => nestedStorage(nested, source, depth + 1));
  const object = unpickle(bytes, { source, resolveGlobal, persistentLoad }, sysInfo.end);
  const keys = unpickle(bytes, plain, object.end);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string'))
    throw new PickleError(`${source}: malformed storage key list`);

  let pos = keys.end;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const key of keys.value as string[]) {
    const storage = roots.get(key);
    if (!storage) throw new PickleError(`${source}: storage ${key} is listed but never used`);
    if (pos + 8 > bytes.length) throw truncatedStorage(source, key);
    const count = Number(bigEndian ? view.getBigInt64(pos, false) : view.getBigInt64(pos, true));
    pos += 8;
    const length = count * ELEMENT_BYTES[storage.dtype];
    if (count < storage.numel) {
      throw new PickleError(
        `${source}: storage ${key} holds ${count} elements but its tensors need ${storage.numel}`,
      );
    }
    if (pos + length > bytes.length) throw truncatedStorage(source, key);
    storage.bytes = littleEndianStorage(bytes.subarray(pos, pos + length), storage.dtype, bigEndian);
    pos += length;
  }
  for (const { view: storageView, root, offset } of views) {
    const size = ELEMENT_BYTES[root.dtype];
    storageView.bytes = root.bytes?.subarray(offset * size, (offset + storageView.numel) * size);
  }
  return { root: object.value, end: pos };
}

function truncatedStorage(source: string, key: string): PickleError {
  return new PickleError(
    `${source}: the data of storage ${key} is cut short: the file is truncated (incomplete download or copy?)`,
  );
}

/** Real files nest once (a plain pickle's storage records); deeper nesting is only a way to exhaust the stack. */
const MAX_STORAGE_NESTING = 2;

/** The storage a `torch.storage._load_from_bytes` record holds (`depth`: how deep it is nested). */
export function nestedStorage(bytes: Uint8Array, source: string, depth = 1): TorchStorage {
  if (depth > MAX_STORAGE_NESTING) throw new PickleError(`${source}: storage records are nested too deeply`);
  const { root } = readLegacyTorchStream(bytes, source, depth);
  if (!(root instanceof TorchStorage))
    throw new PickleError(`${source}: a storage record in the pickle holds no storage`);
  return root;
}

// ---------------------------------------------------------------------------------------------
// Tensor values

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Row-major strides of a contiguous tensor, as torch computes them. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = step;
    step *= shape[i];
  }
  return strides;
}

/**
 * The tensor's values in row-major order as float32, honouring its storage offset and strides
 * (a non-contiguous view is gathered into a contiguous copy).
 */
export function tensorToFloat32(tensor: TorchTensor, name: string, source: string): Float32Array {
  const { storage, offset, shape, stride } = tensor;
  const decodeAs = DECODABLE[storage.dtype];
  if (!decodeAs)
    throw new CheckpointError(`${source}: tensor ${name} has dtype ${storage.dtype}, which cannot be read`);
  if (!storage.bytes) throw new Error(`storage ${storage.key} of ${name} was not loaded`);
  const count = tensor.numel;
  if (count === 0) return new Float32Array(0);
  let last = offset;
  for (let i = 0; i < shape.length; i++) last += (shape[i] - 1) * stride[i];
  const elementBytes = ELEMENT_BYTES[storage.dtype];
  if ((last + 1) * elementBytes > storage.bytes.length) {
    throw new CheckpointError(
      `${source}: tensor ${name} reaches element ${last} of storage ${storage.key}, which holds only ${storage.bytes.length / elementBytes}: the file is truncated or damaged`,
    );
  }
  const dense = contiguousStrides(shape);
  const contiguous = last - offset + 1 === count && stride.every((s, i) => s === dense[i] || shape[i] === 1);
  const start = storage.bytes.byteOffset + offset * elementBytes;
  // torch.save aligns storage records to 64 bytes: float32 tensors there need no copy at all.
  if (contiguous && storage.dtype === 'float32' && start % 4 === 0 && HOST_IS_LITTLE_ENDIAN)
    return new Float32Array(storage.bytes.buffer, start, count);
  const span = decodeToFloat32(
    storage.bytes.subarray(offset * elementBytes, (last + 1) * elementBytes),
    decodeAs,
  );
  if (contiguous) return span;
  const out = new Float32Array(count);
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < count; flat++) {
    let at = 0;
    for (let d = 0; d < shape.length; d++) at += index[d] * stride[d];
    out[flat] = span[at];
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}
