// The safe pickle reader on real CPython output (network-pickle structure, legacy torch.save), on
// hostile pickles (refused by name, never executed), on truncated data, and against our writer.
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.ts';
import { findNetworkState } from '../../src/model/import/network-state.ts';
import {
  isTuple,
  PickleError,
  PyDict,
  PyObject,
  PySet,
  UnsafePickleError,
  unpickle,
} from '../../src/model/import/pickle.ts';
import {
  apply,
  PersistentIdNode,
  PySetNode,
  pickleDump,
  pyFloat,
  pyGlobal,
  pyTuple,
} from '../../src/model/import/pickle-writer.ts';
import { openTorchZip, readPickleBytes } from '../../src/model/import/torch-file.ts';
import { TorchTensor, tensorToFloat32, torchGlobalResolver } from '../../src/model/import/torch-pickle.ts';
import { orderedDictNode } from '../../src/model/import/torch-save.ts';
import { writeStoredZip } from '../../src/model/import/zip.ts';
import { EVAL4, LEGACY, MARKER, POPEN4, SYSTEM2, TOY2, TOY4 } from './fixtures/cpython-pickles.ts';
import { inlineTensorNode, legacyStorageStream } from './support/weights.ts';

function values(tensor: unknown): number[] {
  expect(tensor).toBeInstanceOf(TorchTensor);
  return [...tensorToFloat32(tensor as TorchTensor, 'test', 'test')];
}

function stateOf(obj: unknown): PyDict {
  expect(obj).toBeInstanceOf(PyObject);
  const state = (obj as PyObject).state;
  expect(state).toBeInstanceOf(PyDict);
  return state as PyDict;
}

describe('network pickles written by CPython', () => {
  for (const [protocol, bytes] of [
    [2, TOY2],
    [4, TOY4],
  ] as const) {
    it(`walks persistent module records to their tensors (protocol ${protocol})`, () => {
      const { kind, root } = readPickleBytes(bytes, 'toy.pkl');
      expect(kind).toBe('pickle');
      const { tensors } = findNetworkState(root, 'toy.pkl');
      expect([...tensors.keys()]).toEqual(['G_ema.weight', 'G_ema.w_avg', 'G_ema.sub.bias']);
      expect(tensors.get('G_ema.weight')!.shape).toEqual([2, 3]);
      expect(values(tensors.get('G_ema.weight'))).toEqual([0, 1, 2, 3, 4, 5]);
      expect(tensors.get('G_ema.w_avg')!.dtype).toBe('float16');
      expect(values(tensors.get('G_ema.w_avg'))).toEqual([1.5, -2]);
      // Storage arange(7) * 0.5 viewed from offset 1 with stride (1, 2): element [i][j] = s[1 + i + 2j].
      expect(values(tensors.get('G_ema.sub.bias'))).toEqual([0.5, 1.5, 2.5, 1, 2, 3]);
    });

    it(`keeps module attributes, numpy scalars, EasyDicts and sets as data (protocol ${protocol})`, () => {
      const { root } = readPickleBytes(bytes, 'toy.pkl');
      expect(root).toBeInstanceOf(PyDict);
      const snapshot = root as PyDict;
      expect((snapshot.get('training_set_kwargs') as PyDict).get('resolution')).toBe(4);
      expect(snapshot.get('augment_pipe')).toBeNull();
      const G = snapshot.get('G_ema') as PyObject;
      expect(G.className).toBe('Generator');
      const state = stateOf(G);
      expect(state.get('c_dim')).toBe(0);
      expect(state.get('act_gain')).toBeCloseTo(Math.SQRT2, 15);
      expect(state.get('_non_persistent_buffers_set')).toBeInstanceOf(PySet);
      const initKwargs = state.get('_init_kwargs') as PyDict;
      expect(initKwargs.className).toBe('dnnlib.util.EasyDict');
      expect((initKwargs.get('mapping_kwargs') as PyDict).get('num_layers')).toBe(1);
    });
  }

  it('reads a legacy (non-zip) torch.save file whose tensors share one storage', () => {
    const { kind, root } = readPickleBytes(LEGACY, 'legacy.pt');
    expect(kind).toBe('torch-legacy');
    const dict = root as PyDict;
    expect(dict.className).toBe('collections.OrderedDict');
    const a = dict.get('a') as TorchTensor;
    const b = dict.get('b') as TorchTensor;
    expect(a.storage).toBe(b.storage);
    expect(values(a)).toEqual([0, 1, 2, 3]);
    expect(values(b)).toEqual([4, 5, 6, 7, 8, 9]);
  });
});

describe('torch.save archives', () => {
  it('decodes float16, bfloat16, float64 and strided float32 storages of a big-endian archive', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'facestyle-pickle-'));
    try {
      const tensor = (
        type: string,
        key: string,
        numel: number,
        offset: number,
        shape: number[],
        stride: number[],
      ) =>
        apply(pyGlobal('torch._utils', '_rebuild_tensor_v2'), [
          new PersistentIdNode(pyTuple('storage', pyGlobal('torch', type), key, 'cpu', numel)),
          offset,
          pyTuple(...shape),
          pyTuple(...stride),
          false,
          orderedDictNode([]),
        ]);
      const root = orderedDictNode([
        ['half', tensor('HalfStorage', '0', 2, 0, [2], [1])],
        ['bfloat', tensor('BFloat16Storage', '1', 2, 0, [2], [1])],
        ['double', tensor('DoubleStorage', '2', 2, 0, [2], [1])],
        ['strided', tensor('FloatStorage', '3', 5, 1, [2, 2], [1, 2])],
      ]);
      /** Values written big-endian, `bytes` per element, through the DataView setter `set`. */
      const bigEndian = (
        values: number[],
        bytes: number,
        set: (v: DataView, at: number, x: number) => void,
      ) => {
        const out = new Uint8Array(values.length * bytes);
        const view = new DataView(out.buffer);
        for (const [i, x] of values.entries()) set(view, i * bytes, x);
        return out;
      };
      const storages = [
        bigEndian([0x3e00, 0xc000], 2, (v, at, x) => v.setUint16(at, x)), // float16 1.5, -2
        bigEndian([0x3fc0, 0xc000], 2, (v, at, x) => v.setUint16(at, x)), // bfloat16 1.5, -2
        bigEndian([0.1, -3], 8, (v, at, x) => v.setFloat64(at, x)),
        bigEndian([0, 1, 2, 3, 4], 4, (v, at, x) => v.setFloat32(at, x)),
      ];
      async function* records() {
        yield { name: 'w/data.pkl', data: pickleDump(root, 2) };
        yield { name: 'w/byteorder', data: Buffer.from('big') };
        for (const [key, data] of storages.entries()) yield { name: `w/data/${key}`, data };
        yield { name: 'w/version', data: Buffer.from('3\n') };
      }
      const path = join(dir, 'big.pt');
      await writeStoredZip(path, records());
      const file = await openTorchZip(path);
      try {
        const dict = file.root as PyDict;
        const read = async (name: string) => {
          const t = dict.get(name) as TorchTensor;
          await file.load(t.storage);
          return values(t);
        };
        expect(await read('half')).toEqual([1.5, -2]);
        expect(await read('bfloat')).toEqual([1.5, -2]);
        expect(await read('double')).toEqual([Math.fround(0.1), -3]);
        expect(await read('strided')).toEqual([1, 3, 2, 4]);
      } finally {
        await file.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('hostile pickles', () => {
  beforeEach(() => rmSync(MARKER, { force: true }));

  for (const [what, bytes, global] of [
    ['os.system (GLOBAL, protocol 2)', SYSTEM2, 'posix.system'],
    ['builtins.eval (STACK_GLOBAL, protocol 4)', EVAL4, 'builtins.eval'],
    ['subprocess.Popen (NEWOBJ, protocol 4)', POPEN4, 'subprocess.Popen'],
  ] as const) {
    it(`refuses ${what} by name, without running it`, () => {
      let error: unknown;
      try {
        readPickleBytes(bytes, 'evil.pkl');
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(UnsafePickleError);
      expect(error).toBeInstanceOf(UserError);
      expect((error as Error).message).toContain(global);
      expect((error as Error).message).toContain('evil.pkl');
      expect(existsSync(MARKER)).toBe(false);
    });
  }

  it('refuses a forbidden global hidden in a storage record (a nested torch.save stream)', () => {
    const nested = Buffer.concat([
      pickleDump(0x1950a86a20f9469cfc6cn),
      pickleDump(1001),
      pickleDump(new Map()),
      pickleDump(apply(pyGlobal('os', 'system'), [`touch ${MARKER}`])),
    ]);
    const bytes = pickleDump(apply(pyGlobal('torch.storage', '_load_from_bytes'), [nested]), 4);
    expect(() => readPickleBytes(bytes, 'nested.pkl')).toThrow(/os\.system/);
  });

  it('allows only the listed torch functions, not the whole torch namespace', () => {
    const bytes = pickleDump(apply(pyGlobal('torch', 'load'), ['x.pt']), 4);
    expect(() => readPickleBytes(bytes, 'torchload.pkl')).toThrow(UnsafePickleError);
    // Names that exist on every JS object must not slip through the allow-list tables.
    for (const [module, name] of [
      ['torch', 'constructor'],
      ['collections', 'toString'],
      ['__proto__', 'x'],
    ]) {
      const probe = pickleDump(apply(pyGlobal(module, name), []), 4);
      expect(() => readPickleBytes(probe, 'proto.pkl')).toThrow(UnsafePickleError);
    }
  });

  it('names TensorFlow StyleGAN pickles and says how to convert them', () => {
    const bytes = pickleDump(apply(pyGlobal('dnnlib.tflib.network', 'Network'), [], { newObject: true }), 4);
    expect(() => readPickleBytes(bytes, 'tf.pkl')).toThrow(/TensorFlow StyleGAN.*pickle/);
  });
});

describe('damaged pickles', () => {
  it('reports a pickle cut short as truncated', () => {
    for (const cut of [TOY4.length - 1, Math.floor(TOY4.length * 0.6), 3]) {
      expect(() => readPickleBytes(TOY4.subarray(0, cut), 'cut.pkl')).toThrow(/truncated/);
    }
  });

  it('reports a storage record whose data is cut short', () => {
    const stream = legacyStorageStream(Float32Array.from([1, 2, 3, 4]));
    const bytes = pickleDump(
      apply(pyGlobal('torch.storage', '_load_from_bytes'), [stream.subarray(0, stream.length - 5)]),
      4,
    );
    expect(() => readPickleBytes(bytes, 'short.pkl')).toThrow(/storage .* cut short|truncated/);
  });

  it('rejects opcodes of text pickles (protocol 0)', () => {
    expect(() => readPickleBytes(Buffer.from('I42\n.', 'latin1'), 'text.pkl')).toThrow(PickleError);
  });
});

describe('pickle writer', () => {
  const plain = {
    source: 'roundtrip',
    resolveGlobal: torchGlobalResolver('roundtrip', () => {
      throw new Error('no storages here');
    }),
  };

  for (const protocol of [2, 3, 4] as const) {
    it(`writes values the reader gives back (protocol ${protocol})`, () => {
      const shared = [1, 2];
      const value = new Map<unknown, unknown>([
        ['ints', [0, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31, 2 ** 53 - 1, -(2n ** 70n)]],
        ['float', pyFloat(2)],
        ['pi', Math.PI],
        ['text', 'héllo ✓'],
        ['long text', 'x'.repeat(300)],
        ['tuple', pyTuple(1, pyTuple(), pyTuple('a', 'b', 'c', 'd'))],
        ['flags', [true, false, null]],
        ['shared', [shared, shared]],
        ['set', new PySetNode(['a'])],
      ]);
      const { value: read, end } = unpickle(pickleDump(value as never, protocol), plain);
      expect(end).toBe(pickleDump(value as never, protocol).length);
      const dict = read as PyDict;
      expect(dict.get('ints')).toEqual([
        0,
        255,
        256,
        65535,
        65536,
        -1,
        -(2 ** 31),
        2 ** 31,
        2 ** 53 - 1,
        -(2n ** 70n),
      ]);
      expect(dict.get('float')).toBe(2);
      expect(dict.get('pi')).toBe(Math.PI);
      expect(dict.get('text')).toBe('héllo ✓');
      expect(dict.get('long text')).toBe('x'.repeat(300));
      const tuple = dict.get('tuple') as unknown[];
      expect(isTuple(tuple)).toBe(true);
      expect(tuple).toEqual([1, [], ['a', 'b', 'c', 'd']]);
      expect(dict.get('flags')).toEqual([true, false, null]);
      const [first, second] = dict.get('shared') as unknown[][];
      expect(first).toBe(second);
      expect((dict.get('set') as PySet).items).toEqual(['a']);
    });
  }

  it('writes bytes through _codecs.encode in protocol 2 and as BINBYTES later', () => {
    const data = Uint8Array.from({ length: 300 }, (_, i) => i % 256);
    const resolveGlobal = (module: string, name: string) => {
      if (`${module}.${name}` !== '_codecs.encode') throw new Error(`unexpected global ${module}.${name}`);
      return {
        call: ([text]: readonly unknown[]) => Uint8Array.from(text as string, (c) => c.charCodeAt(0)),
      };
    };
    for (const protocol of [2, 3, 4] as const) {
      const read = unpickle(pickleDump(data, protocol), { source: 'bytes', resolveGlobal }).value;
      expect([...(read as Uint8Array)]).toEqual([...data]);
    }
  });

  it('writes tensors the reader materialises with their shapes', () => {
    const array = { shape: [2, 2], data: Float32Array.from([1, -2, 3.5, 1e-8]) };
    const { root } = readPickleBytes(pickleDump(inlineTensorNode(array), 2), 'tensor.pkl');
    expect((root as TorchTensor).shape).toEqual([2, 2]);
    expect(values(root)).toEqual([...array.data]);
  });
});
