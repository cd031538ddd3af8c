// Pickles built to exhaust the reader rather than to run code: shared children at every level
// (exponentially many paths through the memo), a dict holding itself, nesting deep enough to
// overflow a recursive walk, a list of 300,000 items in one APPENDS, and more objects than any
// network has. Each must be refused in seconds with one line saying the file is not a network.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.ts';
import { legacyStorageStream } from '../../src/model/import/network-pickle-writer.ts';
import { findNetworkState } from '../../src/model/import/network-state.ts';
import { MAX_PICKLE_OBJECTS, NotANetworkPickleError } from '../../src/model/import/pickle.ts';
import {
  apply,
  PersistentIdNode,
  pickleDump,
  pyGlobal,
  pyTuple,
} from '../../src/model/import/pickle-writer.ts';
import { openTorchZip, readPickleBytes } from '../../src/model/import/torch-file.ts';
import { TorchStorage } from '../../src/model/import/torch-pickle.ts';
import { orderedDictNode, writeTorchSave } from '../../src/model/import/torch-save.ts';

const PROTO_2 = [0x80, 0x02];
const EMPTY_DICT = 0x7d;
const EMPTY_LIST = 0x5d;
const MARK = 0x28;
const POP = 0x30;
const BININT1 = 0x4b;
const APPENDS = 0x65;
const SETITEM = 0x73;
const SETITEMS = 0x75;
const LONG_BINPUT = 0x72;
const LONG_BINGET = 0x6a;
const STOP = 0x2e;

/** SHORT_BINUNICODE of an ASCII string. */
function text(value: string): number[] {
  return [0x8c, value.length, ...Buffer.from(value, 'ascii')];
}

function u32(value: number): number[] {
  return [value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, value >>> 24];
}

/** `levels` dicts, each holding the one below twice (under `a` and `b`) through the memo. */
function sharedChildren(levels: number): Uint8Array {
  // Every level but the last is popped once memoized: only the memo holds it.
  const ops = [...PROTO_2, EMPTY_DICT, LONG_BINPUT, ...u32(0), POP];
  for (let level = 1; level <= levels; level++) {
    ops.push(EMPTY_DICT, LONG_BINPUT, ...u32(level), MARK);
    ops.push(...text('a'), LONG_BINGET, ...u32(level - 1), ...text('b'), LONG_BINGET, ...u32(level - 1));
    ops.push(SETITEMS);
    if (level < levels) ops.push(POP);
  }
  ops.push(STOP);
  return Uint8Array.from(ops);
}

/** `{'G_ema': d}` where `d['self'] is d`. */
function dictHoldingItself(): Uint8Array {
  return Uint8Array.from([
    ...PROTO_2,
    EMPTY_DICT,
    ...text('G_ema'),
    EMPTY_DICT,
    LONG_BINPUT,
    ...u32(0),
    ...text('self'),
    LONG_BINGET,
    ...u32(0),
    SETITEM,
    SETITEM,
    STOP,
  ]);
}

/** `{'a': {'a': ... {} ...}}`, `depth` dicts deep, built on the pickle stack. */
function nestedDicts(depth: number): Uint8Array {
  const key = text('a');
  const out = new Uint8Array(2 + 1 + depth * (key.length + 1) + depth + 1);
  let at = 0;
  out.set(PROTO_2, at);
  at += 2;
  out[at++] = EMPTY_DICT;
  for (let i = 0; i < depth; i++) {
    out.set(key, at);
    at += key.length;
    out[at++] = EMPTY_DICT;
  }
  out.fill(SETITEM, at, at + depth);
  at += depth;
  out[at++] = STOP;
  return out;
}

/** One list filled by a single APPENDS of `count` small ints. */
function oneBigAppends(count: number): Uint8Array {
  const out = new Uint8Array(2 + 2 + count * 2 + 2);
  out.set([...PROTO_2, EMPTY_LIST, MARK]);
  for (let i = 0; i < count; i++) out.set([BININT1, i & 0xff], 4 + i * 2);
  out.set([APPENDS, STOP], 4 + count * 2);
  return out;
}

/** `count` empty dicts, each popped right away: tiny on disk, one Map each in memory. */
function manyObjects(count: number): Uint8Array {
  const out = new Uint8Array(2 + count * 2 + 2);
  out.set(PROTO_2);
  for (let i = 0; i < count; i++) out.set([EMPTY_DICT, POP], 2 + i * 2);
  out.set([EMPTY_DICT, STOP], 2 + count * 2);
  return out;
}

/** What `facestyle import` does with a pickle's bytes, short of reading weights. */
function readNetwork(bytes: Uint8Array, source: string) {
  return findNetworkState(readPickleBytes(bytes, source).root, source);
}

/** The refusal `read` throws, checked to be a one-line user error, and how long it took. */
function refusal(read: () => unknown): { error: UserError; seconds: number } {
  const started = performance.now();
  let caught: unknown;
  try {
    read();
  } catch (err) {
    caught = err;
  }
  const seconds = (performance.now() - started) / 1000;
  expect(caught).toBeInstanceOf(UserError);
  const error = caught as UserError;
  expect(error.message).not.toContain('\n');
  return { error, seconds };
}

const HOSTILE: Array<[string, () => Uint8Array, RegExp]> = [
  ['dicts sharing children 64 levels deep (2^64 paths)', () => sharedChildren(64), /no tensors found/],
  ['a dict that holds itself', dictHoldingItself, /no tensors found/],
  ['200,000 nested dicts', () => nestedDicts(200_000), /not a network pickle: its objects nest more than/],
  ['an APPENDS of 300,000 items', () => oneBigAppends(300_000), /holds a list or tuple, not a state_dict/],
  [
    `more than ${MAX_PICKLE_OBJECTS} objects`,
    () => manyObjects(MAX_PICKLE_OBJECTS + 1),
    /not a network pickle: it creates more than 1,000,000 objects/,
  ],
];

describe('pickles built to exhaust the reader', () => {
  it('the memo-sharing pickle is as small as the audit found it (about 1.6 KB)', () => {
    expect(sharedChildren(64).length).toBeLessThan(2048);
  });

  for (const [what, build, message] of HOSTILE) {
    it(`refuses ${what} in seconds, with one line`, () => {
      const { error, seconds } = refusal(() => readNetwork(build(), 'hostile.pkl'));
      expect(error.message).toMatch(message);
      expect(error.message).toMatch(/^hostile\.pkl: /);
      expect(seconds).toBeLessThan(5);
    });
  }

  it('names the depth and object limits in a NotANetworkPickleError', () => {
    const { error } = refusal(() => readNetwork(nestedDicts(300), 'deep.pkl'));
    expect(error).toBeInstanceOf(NotANetworkPickleError);
    expect(refusal(() => readNetwork(manyObjects(MAX_PICKLE_OBJECTS + 1), 'many.pkl')).error).toBeInstanceOf(
      NotANetworkPickleError,
    );
  });

  it('still reads nesting and object counts real files have', () => {
    // 100 levels of plain dicts and a million objects are within the limits: the refusal is about
    // the missing tensors, not the shape.
    expect(refusal(() => readNetwork(nestedDicts(100), 'ok.pkl')).error.message).toMatch(/no tensors found/);
    expect(refusal(() => readNetwork(manyObjects(MAX_PICKLE_OBJECTS - 1), 'ok.pkl')).error.message).toMatch(
      /no tensors found/,
    );
  });
});

describe('tensors claiming more than their storages hold', () => {
  /** A float32 tensor of `shape` viewing storage `key` (of `numel` elements) with `stride`. */
  function tensorNode(key: string, numel: number, shape: number[], stride: number[]) {
    const storage = new PersistentIdNode(
      pyTuple('storage', pyGlobal('torch', 'FloatStorage'), key, 'cpu', numel),
    );
    return apply(pyGlobal('torch._utils', '_rebuild_tensor_v2'), [
      storage,
      0,
      pyTuple(...shape),
      pyTuple(...stride),
      false,
      apply(pyGlobal('collections', 'OrderedDict'), []),
    ]);
  }

  async function refusalOf(name: string, entries: Array<[string, ReturnType<typeof tensorNode>]>) {
    const dir = await mkdtemp(join(tmpdir(), 'facestyle-stride-'));
    try {
      const path = join(dir, name);
      const four = { key: '0', bytes: async () => new Uint8Array(16) };
      await writeTorchSave(path, orderedDictNode(entries), [four]);
      const file = await openTorchZip(path);
      try {
        return refusal(() => findNetworkState(file.root, path));
      } finally {
        await file.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('refuses a stride-0 tensor of 10^10 elements over a 4-element storage, before reading it', async () => {
    const { error, seconds } = await refusalOf('stride0.pt', [
      ['G_ema.mapping.fc0.weight', tensorNode('0', 4, [100_000, 100_000], [0, 0])],
    ]);
    expect(error).toBeInstanceOf(NotANetworkPickleError);
    expect(error.message).toMatch(
      /tensor G_ema\.mapping\.fc0\.weight claims 10000000000 elements of a storage that holds 4/,
    );
    expect(seconds).toBeLessThan(5);
  });

  it('refuses many tensors viewing the same storage over and over', async () => {
    const entries = Array.from(
      { length: 9 },
      (_, i) =>
        [`G_ema.layer${i}.weight`, tensorNode('0', 4, [4], [1])] as [string, ReturnType<typeof tensorNode>],
    );
    const { error } = await refusalOf('overlap.pt', entries);
    expect(error.message).toMatch(/its tensors claim 36 elements from storages that hold 4/);
  });
});

describe('one storage record applied over and over', () => {
  it('parses a memoized storage record once, however often the pickle applies it', () => {
    // The record's bytes are written once and fetched from the memo for each of the 500 calls:
    // parsed (and, for big-endian files, copied) per call, 1 MiB would become 500 MiB.
    const record = legacyStorageStream(new Float32Array(256 * 1024));
    const calls = Array.from({ length: 500 }, () =>
      apply(pyGlobal('torch.storage', '_load_from_bytes'), [record]),
    );
    const bytes = pickleDump(calls, 4);
    expect(bytes.length).toBeLessThan(1.1 * 2 ** 20);
    const started = performance.now();
    const { root } = readPickleBytes(bytes, 'repeat.pkl');
    expect((performance.now() - started) / 1000).toBeLessThan(5);
    const storages = root as unknown[];
    expect(storages).toHaveLength(500);
    expect(storages[0]).toBeInstanceOf(TorchStorage);
    expect(new Set(storages).size).toBe(1);
  });
});

describe('facestyle import of a hostile pickle', () => {
  const run = promisify(execFile);
  const CLI = join(import.meta.dirname, '../../bin/facestyle.js');
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'facestyle-hostile-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const [name, build] of [
    ['shared.pkl', () => sharedChildren(64)],
    ['nested.pkl', () => nestedDicts(200_000)],
  ] as const) {
    it(`prints one error line and a hint for ${name}, no stack trace, and writes nothing`, async () => {
      const source = join(dir, name);
      await writeFile(source, build());
      const out = join(dir, 'out', `${name}.safetensors`);
      const result = await run(process.execPath, [CLI, 'import', source, '--out', out], {
        timeout: 60_000,
      }).then(
        () => ({ code: 0, stderr: '' }),
        (err: { code: number; stderr: string }) => err,
      );
      expect(result.code).toBe(1);
      // Operator log lines (timestamped) go to stderr too; what the user reads is the rest.
      const lines = result.stderr
        .trim()
        .split('\n')
        .filter((line) => !/^\d{4}-\d\d-\d\dT[\d:.]+Z /.test(line));
      expect(lines[0]).toMatch(new RegExp(`^error: ${source.replaceAll('.', '\\.')}: `));
      expect(result.stderr).not.toMatch(/\bat .*\.ts:\d+|RangeError|Maximum call stack/);
      expect(lines.length).toBeLessThanOrEqual(2);
      expect(existsSync(out)).toBe(false);
    }, 90_000);
  }
});
