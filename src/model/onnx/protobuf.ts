// A minimal protobuf writer for the ONNX messages the generator graph needs (onnx.proto, IR 8):
// enough to serialise ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto and
// ValueInfoProto without a protobuf dependency. Messages are built as lists of byte chunks so the
// weights (hundreds of MB at 1024x1024) are copied once, when the model is finally concatenated.

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

/** One protobuf message under construction: its encoded fields, in order. */
export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  get byteLength(): number {
    return this.length;
  }

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.byteLength;
  }

  private tag(field: number, wire: number): void {
    this.push(encodeVarint(BigInt(field * 8 + wire)));
  }

  /** int32/int64/enum field (negative values as 10-byte two's complement, as protobuf does). */
  int(field: number, value: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    this.push(encodeVarint(BigInt.asUintN(64, BigInt(value))));
    return this;
  }

  /** Repeated int64, unpacked (what proto2 writers emit; every parser reads it). */
  ints(field: number, values: ReadonlyArray<number | bigint>): this {
    for (const v of values) this.int(field, v);
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.push(bytes);
    return this;
  }

  floats(field: number, values: readonly number[]): this {
    for (const v of values) this.float(field, v);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.push(encodeVarint(BigInt(value.byteLength)));
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  strings(field: number, values: readonly string[]): this {
    for (const v of values) this.string(field, v);
    return this;
  }

  /** An embedded message: its chunks are referenced, not copied. */
  message(field: number, value: ProtoWriter): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.push(encodeVarint(BigInt(value.length)));
    for (const chunk of value.chunks) this.push(chunk);
    return this;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return out;
  }
}

export function encodeVarint(value: bigint): Uint8Array {
  if (value < 0n) throw new RangeError("encodeVarint: negative value (convert to two's complement first)");
  const bytes: number[] = [];
  let v = value;
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    bytes.push(byte);
  } while (v > 0n);
  return Uint8Array.from(bytes);
}

// ---------------------------------------------------------------------------------------------
// ONNX messages (field numbers from onnx/onnx.proto)

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT64: 7 } as const;
export type DataTypeValue = (typeof DataType)[keyof typeof DataType];

const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

export type AttributeValue = number | string | number[] | { float: number } | { floats: number[] };

export interface TensorValue {
  name: string;
  dims: readonly number[];
  data: Float32Array | BigInt64Array;
}

export function tensorProto(t: TensorValue): ProtoWriter {
  const w = new ProtoWriter().ints(1, t.dims);
  w.int(2, t.data instanceof Float32Array ? DataType.FLOAT : DataType.INT64);
  w.string(8, t.name);
  // raw_data is little-endian, as typed arrays are on every platform Node runs on.
  w.bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return w;
}

/**
 * Integers become INT / INTS attributes and other numbers FLOAT; `{ float }` forces FLOAT for an
 * integral value (Clip-style bounds, LeakyRelu's alpha written as 1 would otherwise be an INT).
 */
export function attributeProto(name: string, value: AttributeValue): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if (typeof value === 'string')
    return w.bytes(4, new TextEncoder().encode(value)).int(20, AttributeType.STRING);
  if (typeof value === 'number') {
    return Number.isInteger(value)
      ? w.int(3, value).int(20, AttributeType.INT)
      : w.float(2, value).int(20, AttributeType.FLOAT);
  }
  if (Array.isArray(value)) {
    if (!value.every(Number.isInteger)) throw new TypeError(`attribute ${name}: INTS must be integers`);
    return w.ints(8, value).int(20, AttributeType.INTS);
  }
  if ('float' in value) return w.float(2, value.float).int(20, AttributeType.FLOAT);
  return w.floats(7, value.floats).int(20, AttributeType.FLOATS);
}

export interface NodeValue {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name: string;
  attributes?: Record<string, AttributeValue>;
}

export function nodeProto(n: NodeValue): ProtoWriter {
  const w = new ProtoWriter()
    .strings(1, n.inputs)
    .strings(2, n.outputs)
    .string(3, n.name)
    .string(4, n.opType);
  for (const [key, value] of Object.entries(n.attributes ?? {})) w.message(5, attributeProto(key, value));
  return w;
}

/** A dimension is a fixed size or a symbolic name (a dynamic axis such as the batch). */
export type Dim = number | string;

export interface ValueInfo {
  name: string;
  elemType: DataTypeValue;
  shape: readonly Dim[];
}

export function valueInfoProto(v: ValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) {
    shape.message(1, typeof d === 'number' ? new ProtoWriter().int(1, d) : new ProtoWriter().string(2, d));
  }
  const tensorType = new ProtoWriter().int(1, v.elemType).message(2, shape);
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}

export interface GraphValue {
  name: string;
  nodes: readonly NodeValue[];
  initializers: readonly TensorValue[];
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
}

export function graphProto(g: GraphValue): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, nodeProto(n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, tensorProto(t));
  for (const v of g.inputs) w.message(11, valueInfoProto(v));
  for (const v of g.outputs) w.message(12, valueInfoProto(v));
  return w;
}

export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 17;

export interface ModelValue {
  graph: GraphValue;
  producerName: string;
  producerVersion: string;
  docString?: string;
}

/** Serialises a ModelProto (IR 8, default-domain opset 17). */
export function encodeModel(m: ModelValue): Uint8Array {
  const opset = new ProtoWriter().string(1, '').int(2, ONNX_OPSET);
  const w = new ProtoWriter().int(1, ONNX_IR_VERSION).string(2, m.producerName).string(3, m.producerVersion);
  if (m.docString) w.string(6, m.docString);
  w.message(7, graphProto(m.graph)).message(8, opset);
  return w.finish();
}
