// A small pickle writer (protocols 2 to 4) for the values torch.save and NVIDIA's network pickles
// hold: containers, scalars, strings, bytes, and calls of named globals (REDUCE / NEWOBJ) with
// optional dict items and BUILD state. It writes the same opcodes CPython's pickler chooses.

/** A Python tuple (JS arrays are lists). */
export class PyTupleNode {
  constructor(readonly items: readonly PickleNode[]) {}
}

/** A Python float (a JS integer would otherwise be written as an int). */
export class PyFloatNode {
  constructor(readonly value: number) {}
}

export class PySetNode {
  constructor(readonly items: readonly PickleNode[]) {}
}

/** A reference to `module.name`, as GLOBAL writes it. */
export class GlobalNode {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
}

export interface ApplyOptions {
  /** NEWOBJ (`cls.__new__(cls, *args)`) instead of REDUCE (`callable(*args)`). */
  newObject?: boolean;
  /** Items set on the result (dict subclasses such as OrderedDict). */
  dictItems?: ReadonlyArray<readonly [PickleNode, PickleNode]>;
  /** BUILD state (an instance `__dict__`). */
  state?: PickleNode;
}

/** `callable(*args)` as the stream records it; the reader decides what that means. */
export class ApplyNode {
  constructor(
    readonly callable: GlobalNode,
    readonly args: readonly PickleNode[],
    readonly options: ApplyOptions = {},
  ) {}
}

/** A BINPERSID reference: how torch.save points at storages kept outside the pickle. */
export class PersistentIdNode {
  constructor(readonly pid: PickleNode) {}
}

export type PickleNode =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleNode[]
  | Map<PickleNode, PickleNode>
  | PyTupleNode
  | PyFloatNode
  | PySetNode
  | GlobalNode
  | ApplyNode
  | PersistentIdNode;

export const pyTuple = (...items: PickleNode[]) => new PyTupleNode(items);
export const pyFloat = (value: number) => new PyFloatNode(value);
export const pyGlobal = (module: string, name: string) => new GlobalNode(module, name);
export const apply = (callable: GlobalNode, args: PickleNode[], options?: ApplyOptions) =>
  new ApplyNode(callable, args, options);

export type PickleProtocol = 2 | 3 | 4;

const BATCH = 1000;

class PickleWriter {
  private readonly chunks: Uint8Array[] = [];
  private small: number[] = [];
  private readonly memo = new Map<unknown, number>();

  constructor(private readonly protocol: PickleProtocol) {}

  private flushSmall(): void {
    if (this.small.length > 0) {
      this.chunks.push(Uint8Array.from(this.small));
      this.small = [];
    }
  }

  private op(...bytes: number[]): void {
    for (const b of bytes) this.small.push(b);
  }

  private raw(bytes: Uint8Array): void {
    if (bytes.length < 64) {
      for (const b of bytes) this.small.push(b);
      return;
    }
    this.flushSmall();
    this.chunks.push(bytes);
  }

  private u32(value: number): number[] {
    return [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff];
  }

  private put(key: unknown): void {
    const index = this.memo.size;
    this.memo.set(key, index);
    if (index < 256) this.op(0x71, index);
    else this.op(0x72, ...this.u32(index));
  }

  /** Writes a memo GET when `key` was written before. */
  private get(key: unknown): boolean {
    const index = this.memo.get(key);
    if (index === undefined) return false;
    if (index < 256) this.op(0x68, index);
    else this.op(0x6a, ...this.u32(index));
    return true;
  }

  int(value: number | bigint): void {
    if (typeof value === 'number' && value >= 0 && value < 0x100) this.op(0x4b, value);
    else if (typeof value === 'number' && value >= 0 && value < 0x10000)
      this.op(0x4d, value & 0xff, value >> 8);
    else if (typeof value === 'number' && value >= -0x80000000 && value <= 0x7fffffff)
      this.op(0x4a, ...this.u32(value));
    else this.long(BigInt(value));
  }

  /** LONG1: minimal little-endian two's complement. */
  private long(value: bigint): void {
    let rest = value;
    const bytes: number[] = [];
    for (;;) {
      const byte = Number(rest & 0xffn);
      bytes.push(byte);
      rest >>= 8n;
      if ((rest === 0n && (byte & 0x80) === 0) || (rest === -1n && (byte & 0x80) !== 0)) break;
    }
    this.op(0x8a, bytes.length, ...bytes);
  }

  float(value: number): void {
    const buf = Buffer.alloc(8);
    buf.writeDoubleBE(value);
    this.op(0x47, ...buf);
  }

  string(value: string): void {
    const bytes = Buffer.from(value, 'utf8');
    if (this.protocol >= 4 && bytes.length < 256) this.op(0x8c, bytes.length);
    else this.op(0x58, ...this.u32(bytes.length));
    this.raw(bytes);
  }

  bytes(value: Uint8Array): void {
    if (this.protocol < 3) {
      // Protocol 2 has no bytes type: CPython writes _codecs.encode(text, 'latin1').
      this.node(apply(pyGlobal('_codecs', 'encode'), [Buffer.from(value).toString('latin1'), 'latin1']));
      return;
    }
    if (value.length < 256) this.op(0x43, value.length);
    else this.op(0x42, ...this.u32(value.length));
    this.raw(value);
  }

  global(node: GlobalNode): void {
    const module = this.protocol < 3 && node.module === 'builtins' ? '__builtin__' : node.module;
    const key = `global:${module}.${node.name}`;
    if (this.get(key)) return;
    this.op(0x63);
    this.raw(Buffer.from(`${module}\n${node.name}\n`, 'latin1'));
    this.put(key);
  }

  private tuple(items: readonly PickleNode[]): void {
    if (items.length > 3) this.op(0x28);
    for (const item of items) this.node(item);
    // EMPTY_TUPLE, TUPLE1..3 for short tuples, else MARK ... TUPLE.
    this.op([0x29, 0x85, 0x86, 0x87][items.length] ?? 0x74);
  }

  private setItems(items: ReadonlyArray<readonly [PickleNode, PickleNode]>): void {
    for (let i = 0; i < items.length; i += BATCH) {
      this.op(0x28);
      for (const [key, value] of items.slice(i, i + BATCH)) {
        this.node(key);
        this.node(value);
      }
      this.op(0x75);
    }
  }

  private list(value: PickleNode[]): void {
    this.op(0x5d);
    this.put(value);
    for (let i = 0; i < value.length; i += BATCH) {
      this.op(0x28);
      for (const item of value.slice(i, i + BATCH)) this.node(item);
      this.op(0x65);
    }
  }

  private dict(value: Map<PickleNode, PickleNode>): void {
    this.op(0x7d);
    this.put(value);
    this.setItems([...value]);
  }

  private set(value: PySetNode): void {
    if (this.protocol < 4) {
      this.node(apply(pyGlobal('builtins', 'set'), [[...value.items]]));
      this.put(value);
      return;
    }
    this.op(0x8f);
    this.put(value);
    if (value.items.length === 0) return;
    this.op(0x28);
    for (const item of value.items) this.node(item);
    this.op(0x90);
  }

  private applyCall(value: ApplyNode): void {
    const { newObject, dictItems, state } = value.options;
    this.global(value.callable);
    this.tuple(value.args);
    this.op(newObject ? 0x81 : 0x52);
    this.put(value);
    if (dictItems?.length) this.setItems(dictItems);
    if (state !== undefined) {
      this.node(state);
      this.op(0x62);
    }
  }

  /** Writes any value; objects written before are fetched from the memo (shared, as in Python). */
  node(value: PickleNode): void {
    if (value === null) this.op(0x4e);
    else if (value === true) this.op(0x88);
    else if (value === false) this.op(0x89);
    else if (typeof value === 'number') Number.isInteger(value) ? this.int(value) : this.float(value);
    else if (typeof value === 'bigint') this.int(value);
    else if (typeof value === 'string') this.string(value);
    else if (value instanceof PyFloatNode) this.float(value.value);
    else if (value instanceof GlobalNode) this.global(value);
    else if (value instanceof PersistentIdNode) {
      this.node(value.pid);
      this.op(0x51);
    } else if (this.get(value)) {
      // Written before: the memo GET is all it takes.
    } else if (value instanceof Uint8Array) {
      this.bytes(value);
      this.put(value);
    } else if (value instanceof PyTupleNode) {
      this.tuple(value.items);
      this.put(value);
    } else if (Array.isArray(value)) this.list(value);
    else if (value instanceof Map) this.dict(value);
    else if (value instanceof PySetNode) this.set(value);
    else this.applyCall(value);
  }

  finish(root: PickleNode): Buffer {
    this.op(0x80, this.protocol);
    this.node(root);
    this.op(0x2e);
    this.flushSmall();
    return Buffer.concat(this.chunks);
  }
}

/** Serialises `root` as one pickle (PROTO ... STOP). */
export function pickleDump(root: PickleNode, protocol: PickleProtocol = 2): Buffer {
  return new PickleWriter(protocol).finish(root);
}
