// A Python pickle interpreter (protocols 2 to 5) that never executes anything. Loading a pickle in
// Python calls whatever the stream names (`os.system` as easily as `OrderedDict`); here every
// global the stream names goes through the caller's allow-list before it is even pushed, and the
// only calls that ever happen are the caller's own implementations of the allowed names. Other
// classes become inert records (class name, arguments, state) to be read as data.
// Over 500 lines: one interpreter (the opcode table and the stack machine that runs it), reviewed
// as one trust boundary.
import { CheckpointError } from '../checkpoint/format.ts';

/** A file that cannot be read as a pickle: malformed, truncated, or using unsupported features. */
export class PickleError extends CheckpointError {
  override name = 'PickleError';
}

/**
 * A pickle whose shape no network file has: more objects, or deeper nesting, than any real
 * checkpoint, which is only a way to exhaust memory, the stack or the walk over its objects.
 */
export class NotANetworkPickleError extends PickleError {
  override name = 'NotANetworkPickleError';
  constructor(source: string, why: string) {
    super(
      `${source}: this file is not a network pickle: ${why}`,
      'only StyleGAN2 network pickles, torch.save files and safetensors can be imported',
    );
  }
}

/**
 * The most containers (dicts, lists, tuples, sets, objects) one pickle may create. StyleGAN2's
 * largest network pickle (1024x1024, G, D and G_ema) makes about 20,000; a million Maps already
 * take a few hundred MB, so a small file cannot make the reader allocate gigabytes.
 */
export const MAX_PICKLE_OBJECTS = 1_000_000;

/** A pickle that names a global outside the allow-list: it would run code when loaded in Python. */
export class UnsafePickleError extends PickleError {
  override name = 'UnsafePickleError';
  constructor(
    readonly source: string,
    readonly globalName: string,
  ) {
    super(
      `${source}: refusing to load: the pickle references ${globalName}, which is not a tensor, storage ` +
        'or module-state class (loading it with Python would call it)',
      'only StyleGAN2 network pickles, torch.save files and safetensors can be imported; nothing in the file is executed',
    );
  }
}

/** A Python dict, OrderedDict or dict subclass (EasyDict). Keys keep Python's insertion order. */
export class PyDict {
  readonly entries = new Map<unknown, unknown>();
  /** Instance attributes set by BUILD (an OrderedDict's `_metadata`), kept as data. */
  attributes: unknown = undefined;
  constructor(readonly className = 'builtins.dict') {}

  get(key: unknown): unknown {
    return this.entries.get(key);
  }
}

export class PySet {
  readonly items: unknown[] = [];
  constructor(readonly frozen = false) {}
}

/** An instance of an allowed class, never constructed: what the pickle said about it, as data. */
export class PyObject {
  /** Set by BUILD: normally the instance `__dict__` as a PyDict. */
  state: unknown = undefined;
  /** Items added by SETITEM(S) / APPEND(S) when the class is a dict or list subclass. */
  readonly items = new Map<unknown, unknown>();
  readonly listItems: unknown[] = [];
  constructor(
    readonly className: string,
    readonly args: readonly unknown[] = [],
    readonly kwargs?: unknown,
  ) {}
}

/** What the allow-list says an allowed global does when the stream applies it. */
export interface GlobalBehaviour {
  /** REDUCE `callable(*args)`. Without it, applying the global makes an inert PyObject. */
  call?(args: readonly unknown[]): unknown;
  /** NEWOBJ `cls.__new__(cls, *args)`. Without it, an inert PyObject. */
  construct?(args: readonly unknown[]): unknown;
}

/** A global the stream named and the allow-list accepted. */
export class PyGlobal {
  constructor(
    readonly qualifiedName: string,
    readonly behaviour: GlobalBehaviour,
  ) {}
}

export interface UnpickleOptions {
  /** Names the file in error messages. */
  source: string;
  /** The allow-list: returns the behaviour of `module.name`, or throws (UnsafePickleError). */
  resolveGlobal(module: string, name: string): GlobalBehaviour;
  /** Resolves BINPERSID ids (torch storages); without it, persistent ids are refused. */
  persistentLoad?(pid: unknown): unknown;
}

export interface UnpickleResult {
  value: unknown;
  /** Offset just past the STOP opcode: where a following pickle in the same buffer starts. */
  end: number;
}

/** Tuples are frozen arrays, so that APPEND on one fails and `isTuple` can tell them from lists. */
export function isTuple(value: unknown): value is readonly unknown[] {
  return Array.isArray(value) && Object.isFrozen(value);
}

function tuple(items: unknown[]): readonly unknown[] {
  return Object.freeze(items);
}

/** Appends without spreading: `push(...items)` throws a RangeError past ~100,000 arguments. */
export function appendAll(target: unknown[], items: readonly unknown[]): void {
  for (const item of items) target.push(item);
}

const HIGHEST_PROTOCOL = 5;

// Opcodes by byte value (pickletools.py names). Protocol 0/1 text opcodes are deliberately absent.
const OP = {
  MARK: 0x28,
  STOP: 0x2e,
  POP: 0x30,
  POP_MARK: 0x31,
  DUP: 0x32,
  BINFLOAT: 0x47,
  BININT: 0x4a,
  BININT1: 0x4b,
  BININT2: 0x4d,
  NONE: 0x4e,
  BINPERSID: 0x51,
  REDUCE: 0x52,
  BINSTRING: 0x54,
  SHORT_BINSTRING: 0x55,
  BINUNICODE: 0x58,
  EMPTY_LIST: 0x5d,
  APPEND: 0x61,
  BUILD: 0x62,
  GLOBAL: 0x63,
  DICT: 0x64,
  APPENDS: 0x65,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  LIST: 0x6c,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  SETITEM: 0x73,
  TUPLE: 0x74,
  SETITEMS: 0x75,
  EMPTY_DICT: 0x7d,
  EMPTY_TUPLE: 0x29,
  BINBYTES: 0x42,
  SHORT_BINBYTES: 0x43,
  PROTO: 0x80,
  NEWOBJ: 0x81,
  EXT1: 0x82,
  EXT2: 0x83,
  EXT4: 0x84,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
  LONG4: 0x8b,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  BINBYTES8: 0x8e,
  EMPTY_SET: 0x8f,
  ADDITEMS: 0x90,
  FROZENSET: 0x91,
  NEWOBJ_EX: 0x92,
  STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94,
  FRAME: 0x95,
  BYTEARRAY8: 0x96,
  NEXT_BUFFER: 0x97,
  READONLY_BUFFER: 0x98,
} as const;

const utf8 = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

/** Interprets one pickle starting at `start`; see the file comment for what "safe" means here. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions, start = 0): UnpickleResult {
  return new Unpickler(bytes, opts, start).run();
}

class Unpickler {
  private pos: number;
  private stack: unknown[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly view: DataView;
  private objects = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly opts: UnpickleOptions,
    start: number,
  ) {
    this.pos = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Counts one new container against MAX_PICKLE_OBJECTS and returns it. */
  private made<T>(container: T): T {
    if (++this.objects > MAX_PICKLE_OBJECTS)
      throw new NotANetworkPickleError(
        this.opts.source,
        `it creates more than ${MAX_PICKLE_OBJECTS.toLocaleString('en-US')} objects`,
      );
    return container;
  }

  private fail(message: string, hint?: string): PickleError {
    return new PickleError(`${this.opts.source}: ${message}`, hint);
  }

  private truncated(): PickleError {
    return this.fail(
      'the pickle data ends before its STOP opcode: the file is truncated (incomplete download or copy?)',
    );
  }

  private need(count: number): number {
    if (count < 0 || this.pos + count > this.bytes.length) throw this.truncated();
    const at = this.pos;
    this.pos += count;
    return at;
  }

  private u8(): number {
    return this.bytes[this.need(1)];
  }

  private u16(): number {
    return this.view.getUint16(this.need(2), true);
  }

  private u32(): number {
    return this.view.getUint32(this.need(4), true);
  }

  private i32(): number {
    return this.view.getInt32(this.need(4), true);
  }

  private u64(): number {
    const at = this.need(8);
    const value = this.view.getBigUint64(at, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw this.truncated();
    return Number(value);
  }

  private take(count: number): Uint8Array {
    const at = this.need(count);
    return this.bytes.subarray(at, at + count);
  }

  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) throw this.truncated();
    const text = latin1.decode(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return text;
  }

  private pop(): unknown {
    if (this.stack.length === 0 || this.stack.length <= (this.marks.at(-1) ?? -1)) {
      throw this.fail('malformed pickle: stack underflow');
    }
    return this.stack.pop();
  }

  private top(): unknown {
    if (this.stack.length === 0) throw this.fail('malformed pickle: stack underflow');
    return this.stack[this.stack.length - 1];
  }

  /** Pops everything pushed since the last MARK. */
  private popMark(): unknown[] {
    const mark = this.marks.pop();
    if (mark === undefined) throw this.fail('malformed pickle: no MARK on the stack');
    return this.stack.splice(mark);
  }

  private memoGet(index: number): unknown {
    if (!this.memo.has(index)) throw this.fail(`malformed pickle: memo entry ${index} was never stored`);
    return this.memo.get(index);
  }

  private resolve(module: string, name: string): PyGlobal {
    return new PyGlobal(`${module}.${name}`, this.opts.resolveGlobal(module, name));
  }

  private asGlobal(value: unknown, opcode: string): PyGlobal {
    if (!(value instanceof PyGlobal))
      throw this.fail(`malformed pickle: ${opcode} applied to a non-class value`);
    return value;
  }

  private asTuple(value: unknown, what: string): readonly unknown[] {
    if (!isTuple(value)) throw this.fail(`malformed pickle: ${what} is not a tuple`);
    return value;
  }

  private setItems(target: unknown, items: unknown[]): void {
    if (items.length % 2 !== 0) throw this.fail('malformed pickle: SETITEMS with an odd number of items');
    const map =
      target instanceof PyDict ? target.entries : target instanceof PyObject ? target.items : undefined;
    if (!map) throw this.fail('malformed pickle: SETITEM on a value that is not a dict');
    for (let i = 0; i < items.length; i += 2) map.set(items[i], items[i + 1]);
  }

  private appendItems(target: unknown, items: unknown[]): void {
    if (Array.isArray(target) && !isTuple(target)) appendAll(target, items);
    else if (target instanceof PyObject) appendAll(target.listItems, items);
    else throw this.fail('malformed pickle: APPEND on a value that is not a list');
  }

  private build(target: unknown, state: unknown): void {
    if (target instanceof PyObject) target.state = state;
    else if (target instanceof PyDict) target.attributes = state;
    else throw this.fail('malformed pickle: BUILD on a value that is not an object');
  }

  private long(bytes: Uint8Array): number | bigint {
    if (bytes.length === 0) return 0;
    let value = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
    if (bytes[bytes.length - 1] & 0x80) value -= 1n << BigInt(bytes.length * 8);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  }

  run(): UnpickleResult {
    const push = (value: unknown) => this.stack.push(value);
    for (;;) {
      if (this.pos >= this.bytes.length) throw this.truncated();
      const at = this.pos;
      const op = this.u8();
      switch (op) {
        case OP.PROTO: {
          const version = this.u8();
          if (version > HIGHEST_PROTOCOL) throw this.fail(`pickle protocol ${version} is newer than 5`);
          break;
        }
        case OP.FRAME:
          this.u64();
          break;
        case OP.STOP: {
          if (this.stack.length !== 1 || this.marks.length > 0)
            throw this.fail('malformed pickle: STOP with an unbalanced stack');
          return { value: this.stack[0], end: this.pos };
        }
        case OP.MARK:
          this.marks.push(this.stack.length);
          break;
        case OP.POP:
          if (this.stack.length === (this.marks.at(-1) ?? -1)) this.popMark();
          else this.pop();
          break;
        case OP.POP_MARK:
          this.popMark();
          break;
        case OP.DUP:
          push(this.top());
          break;
        case OP.NONE:
          push(null);
          break;
        case OP.NEWTRUE:
          push(true);
          break;
        case OP.NEWFALSE:
          push(false);
          break;
        case OP.BININT:
          push(this.i32());
          break;
        case OP.BININT1:
          push(this.u8());
          break;
        case OP.BININT2:
          push(this.u16());
          break;
        case OP.LONG1:
          push(this.long(this.take(this.u8())));
          break;
        case OP.LONG4: {
          const length = this.i32();
          if (length < 0) throw this.fail('malformed pickle: negative LONG4 length');
          push(this.long(this.take(length)));
          break;
        }
        case OP.BINFLOAT:
          push(this.view.getFloat64(this.need(8), false));
          break;
        case OP.SHORT_BINUNICODE:
          push(utf8.decode(this.take(this.u8())));
          break;
        case OP.BINUNICODE:
          push(utf8.decode(this.take(this.u32())));
          break;
        case OP.BINUNICODE8:
          push(utf8.decode(this.take(this.u64())));
          break;
        // Python 2 byte strings: Python 3 reads them as text unless told otherwise.
        case OP.SHORT_BINSTRING:
          push(latin1.decode(this.take(this.u8())));
          break;
        case OP.BINSTRING: {
          const length = this.i32();
          if (length < 0) throw this.fail('malformed pickle: negative BINSTRING length');
          push(latin1.decode(this.take(length)));
          break;
        }
        // Bytes are views into the input: tensor data is never copied here.
        case OP.SHORT_BINBYTES:
          push(this.take(this.u8()));
          break;
        case OP.BINBYTES:
          push(this.take(this.u32()));
          break;
        case OP.BINBYTES8:
        case OP.BYTEARRAY8:
          push(this.take(this.u64()));
          break;
        case OP.EMPTY_TUPLE:
          push(this.made(tuple([])));
          break;
        case OP.TUPLE1:
          push(this.made(tuple([this.pop()])));
          break;
        case OP.TUPLE2: {
          const b = this.pop();
          push(this.made(tuple([this.pop(), b])));
          break;
        }
        case OP.TUPLE3: {
          const c = this.pop();
          const b = this.pop();
          push(this.made(tuple([this.pop(), b, c])));
          break;
        }
        case OP.TUPLE:
          push(this.made(tuple(this.popMark())));
          break;
        case OP.EMPTY_LIST:
          push(this.made([]));
          break;
        case OP.LIST:
          push(this.made(this.popMark()));
          break;
        case OP.APPEND: {
          const item = this.pop();
          this.appendItems(this.top(), [item]);
          break;
        }
        case OP.APPENDS: {
          const items = this.popMark();
          this.appendItems(this.top(), items);
          break;
        }
        case OP.EMPTY_DICT:
          push(this.made(new PyDict()));
          break;
        case OP.DICT: {
          const dict = this.made(new PyDict());
          this.setItems(dict, this.popMark());
          push(dict);
          break;
        }
        case OP.SETITEM: {
          const value = this.pop();
          const key = this.pop();
          this.setItems(this.top(), [key, value]);
          break;
        }
        case OP.SETITEMS: {
          const items = this.popMark();
          this.setItems(this.top(), items);
          break;
        }
        case OP.EMPTY_SET:
          push(this.made(new PySet()));
          break;
        case OP.ADDITEMS: {
          const items = this.popMark();
          const set = this.top();
          if (!(set instanceof PySet) || set.frozen)
            throw this.fail('malformed pickle: ADDITEMS on a value that is not a set');
          appendAll(set.items, items);
          break;
        }
        case OP.FROZENSET: {
          const set = this.made(new PySet(true));
          appendAll(set.items, this.popMark());
          push(set);
          break;
        }
        case OP.BINPUT:
          this.memo.set(this.u8(), this.top());
          break;
        case OP.LONG_BINPUT:
          this.memo.set(this.u32(), this.top());
          break;
        case OP.MEMOIZE:
          this.memo.set(this.memo.size, this.top());
          break;
        case OP.BINGET:
          push(this.memoGet(this.u8()));
          break;
        case OP.LONG_BINGET:
          push(this.memoGet(this.u32()));
          break;
        case OP.GLOBAL: {
          const module = this.line();
          push(this.resolve(module, this.line()));
          break;
        }
        case OP.STACK_GLOBAL: {
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string')
            throw this.fail('malformed pickle: STACK_GLOBAL needs two strings');
          push(this.resolve(module, name));
          break;
        }
        case OP.REDUCE: {
          const args = this.asTuple(this.pop(), 'REDUCE arguments');
          const callable = this.asGlobal(this.pop(), 'REDUCE');
          const { call } = callable.behaviour;
          push(this.made(call ? call(args) : new PyObject(callable.qualifiedName, args)));
          break;
        }
        case OP.NEWOBJ: {
          const args = this.asTuple(this.pop(), 'NEWOBJ arguments');
          const cls = this.asGlobal(this.pop(), 'NEWOBJ');
          const { construct } = cls.behaviour;
          push(this.made(construct ? construct(args) : new PyObject(cls.qualifiedName, args)));
          break;
        }
        case OP.NEWOBJ_EX: {
          const kwargs = this.pop();
          const args = this.asTuple(this.pop(), 'NEWOBJ_EX arguments');
          const cls = this.asGlobal(this.pop(), 'NEWOBJ_EX');
          push(this.made(new PyObject(cls.qualifiedName, args, kwargs)));
          break;
        }
        case OP.BUILD: {
          const state = this.pop();
          this.build(this.top(), state);
          break;
        }
        case OP.BINPERSID: {
          const pid = this.pop();
          if (!this.opts.persistentLoad)
            throw this.fail('the pickle refers to external data (a persistent id) this file cannot have');
          push(this.opts.persistentLoad(pid));
          break;
        }
        case OP.READONLY_BUFFER:
          this.top();
          break;
        case OP.NEXT_BUFFER:
          throw this.fail('the pickle uses out-of-band buffers (protocol 5), which a file cannot carry');
        case OP.EXT1:
        case OP.EXT2:
        case OP.EXT4:
          throw this.fail('the pickle uses the copyreg extension registry, which is not supported');
        default:
          throw this.fail(
            `unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}`,
            'only binary pickles (protocol 2 to 5) are supported',
          );
      }
    }
  }
}
