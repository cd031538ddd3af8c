// Files written by PyTorch: torch.save zip archives (`<name>/data.pkl` plus one `<name>/data/<key>`
// record per storage), legacy torch.save streams, and plain pickles (NVIDIA network .pkl files).
// Each opens to its unpickled root object and a way to load the bytes of the storages it uses;
// zip storages are read on demand, so optimizer state and other unused records are never read.
import { CheckpointError } from '../checkpoint/io.ts';
import { isTuple, PickleError, unpickle } from './pickle.ts';
import {
  ELEMENT_BYTES,
  littleEndianStorage,
  nestedStorage,
  readLegacyTorchStream,
  startsWithTorchMagic,
  storageDType,
  TorchStorage,
  torchGlobalResolver,
} from './torch-pickle.ts';
import { ZipArchiveReader } from './zip.ts';

export type TorchFileKind = 'torch-zip' | 'torch-legacy' | 'pickle';

export interface TorchFile {
  kind: TorchFileKind;
  root: unknown;
  /** Makes sure `storage.bytes` holds the storage's data (little-endian). */
  load(storage: TorchStorage): Promise<void>;
  close(): Promise<void>;
}

/** A torch.save zip archive. */
export async function openTorchZip(path: string): Promise<TorchFile> {
  const zip = await ZipArchiveReader.open(path);
  try {
    const names = [...zip.entries.keys()];
    const pickleName = names.find((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (!pickleName) {
      const torchScript = names.some((n) => /^[^/]+\/(constants\.pkl|code\/)/.test(n));
      throw new CheckpointError(
        torchScript
          ? `${path} is a TorchScript archive (torch.jit.save), which holds compiled code rather than a state_dict`
          : `${path} is a zip archive but not a torch.save file (no data.pkl record)`,
        'save the weights with torch.save(module.state_dict(), path), or import the network .pkl',
      );
    }
    const prefix = pickleName.slice(0, -'data.pkl'.length);
    const byteOrder = zip.entries.has(`${prefix}byteorder`)
      ? (await zip.read(`${prefix}byteorder`)).toString('latin1')
      : 'little';
    if (byteOrder !== 'little' && byteOrder !== 'big')
      throw new CheckpointError(`${path}: unknown byte order record "${byteOrder}"`);
    const storages = new Map<string, TorchStorage>();
    const persistentLoad = (pid: unknown): TorchStorage => {
      if (!isTuple(pid)) throw new PickleError(`${path}: malformed persistent id in data.pkl`);
      const [kind, storageType, key, , numel] = pid;
      const dtype = storageDType(storageType);
      if (kind !== 'storage' || !dtype || typeof key !== 'string' || typeof numel !== 'number')
        throw new PickleError(`${path}: malformed storage reference in data.pkl`);
      let storage = storages.get(key);
      if (!storage) {
        storage = new TorchStorage(dtype, key, numel);
        storages.set(key, storage);
      }
      return storage;
    };
    const resolveGlobal = torchGlobalResolver(path, (bytes) => nestedStorage(bytes, path));
    const { value: root } = unpickle(await zip.read(pickleName), {
      source: path,
      resolveGlobal,
      persistentLoad,
    });
    return {
      kind: 'torch-zip',
      root,
      async load(storage) {
        if (storage.bytes) return;
        const record = `${prefix}data/${storage.key}`;
        if (!zip.entries.has(record))
          throw new CheckpointError(`${path}: storage record ${record} is missing`);
        const bytes = await zip.read(record);
        const needed = storage.numel * ELEMENT_BYTES[storage.dtype];
        if (bytes.length < needed) {
          throw new CheckpointError(
            `${path}: storage ${record} has ${bytes.length} bytes but its tensors need ${needed}: the file is truncated or damaged`,
          );
        }
        storage.bytes = littleEndianStorage(bytes, storage.dtype, byteOrder === 'big');
      },
      close: () => zip.close(),
    };
  } catch (err) {
    await zip.close();
    throw err;
  }
}

/** A pickle held in memory: a legacy torch.save stream, or a plain pickle (NVIDIA network .pkl). */
export function readPickleBytes(bytes: Uint8Array, source: string): { kind: TorchFileKind; root: unknown } {
  if (startsWithTorchMagic(bytes))
    return { kind: 'torch-legacy', root: readLegacyTorchStream(bytes, source).root };
  const resolveGlobal = torchGlobalResolver(source, (nested) => nestedStorage(nested, source));
  return { kind: 'pickle', root: unpickle(bytes, { source, resolveGlobal }).value };
}

/** A pickle file's bytes, parsed: every storage it holds is in memory once it is. */
export function pickleFileFromBytes(bytes: Uint8Array, path: string): TorchFile {
  const { kind, root } = readPickleBytes(bytes, path);
  return { kind, root, load: async () => {}, close: async () => {} };
}
