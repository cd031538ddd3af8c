// Writing torch.save files: a zip with `archive/data.pkl` (protocol 2, storages referenced by
// persistent id), `archive/byteorder`, one `archive/data/<key>` record per storage and
// `archive/version`, which is what torch.load (and our reader) expects.
import {
  type ApplyNode,
  apply,
  PersistentIdNode,
  type PickleNode,
  pickleDump,
  pyGlobal,
  pyTuple,
} from './pickle-writer.ts';
import { contiguousStrides } from './torch-pickle.ts';
import { writeStoredZip, type ZipRecordToWrite } from './zip.ts';

const ARCHIVE = 'archive';
/** The zip layout version torch writes for ordinary tensors. */
const FILE_FORMAT_VERSION = '3\n';

/**
 * `torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())` for a
 * contiguous float32 tensor filling storage `key`: how torch.save pickles a tensor.
 */
export function float32TensorNode(key: string, shape: readonly number[]): ApplyNode {
  const numel = shape.reduce((a, b) => a * b, 1);
  const storage = new PersistentIdNode(
    pyTuple('storage', pyGlobal('torch', 'FloatStorage'), key, 'cpu', numel),
  );
  return apply(pyGlobal('torch._utils', '_rebuild_tensor_v2'), [
    storage,
    0,
    pyTuple(...shape),
    pyTuple(...contiguousStrides(shape)),
    false,
    apply(pyGlobal('collections', 'OrderedDict'), []),
  ]);
}

/** An OrderedDict of `entries`, as a state_dict pickles. */
export function orderedDictNode(entries: ReadonlyArray<readonly [string, PickleNode]>): ApplyNode {
  return apply(pyGlobal('collections', 'OrderedDict'), [], { dictItems: entries });
}

export interface StorageToWrite {
  key: string;
  /** Produces the storage's little-endian bytes when the writer reaches it. */
  bytes(): Promise<Uint8Array>;
}

/** Writes a torch.save archive: `root` pickled as data.pkl, then every storage it references. */
export async function writeTorchSave(
  path: string,
  root: PickleNode,
  storages: StorageToWrite[],
): Promise<void> {
  async function* records(): AsyncGenerator<ZipRecordToWrite> {
    yield { name: `${ARCHIVE}/data.pkl`, data: pickleDump(root, 2) };
    yield { name: `${ARCHIVE}/byteorder`, data: Buffer.from('little', 'latin1') };
    for (const storage of storages)
      yield { name: `${ARCHIVE}/data/${storage.key}`, data: await storage.bytes() };
    yield { name: `${ARCHIVE}/version`, data: Buffer.from(FILE_FORMAT_VERSION, 'latin1') };
  }
  await writeStoredZip(path, records());
}

export interface Float32TensorToWrite {
  name: string;
  shape: number[];
  /** Row-major values, produced when the writer reaches this tensor. */
  values(): Promise<Float32Array>;
}

/** torch.save(OrderedDict(name -> tensor)): a state_dict file, one storage per tensor. */
export async function writeTorchStateDict(path: string, tensors: Float32TensorToWrite[]): Promise<void> {
  const root = orderedDictNode(
    tensors.map((t, i) => [t.name, float32TensorNode(String(i), t.shape)] as const),
  );
  const storages = tensors.map((t, i) => ({
    key: String(i),
    bytes: async () => {
      const values = await t.values();
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    },
  }));
  await writeTorchSave(path, root, storages);
}
