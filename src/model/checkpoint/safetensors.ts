// safetensors: an 8-byte little-endian header length, a JSON header, then raw little-endian tensor
// bytes. Reading opens the file once and reads each tensor's byte range on demand, so a large
// checkpoint is never held in memory twice.
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { UserError } from '../../errors.ts';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'U8' | 'BOOL';
export type FloatWriteDType = 'F32' | 'F16' | 'BF16';

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

export interface TensorData {
  name: string;
  shape: number[];
  data: Float32Array;
}

const BYTES: Record<SafetensorsDType, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  U8: 1,
  BOOL: 1,
};
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

// Typed arrays use the host byte order and safetensors is little-endian; every host Node supports
// in practice is little-endian, so the fast paths below simply refuse to run elsewhere.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function assertLittleEndianHost(): void {
  if (!HOST_IS_LITTLE_ENDIAN) throw new Error('safetensors I/O needs a little-endian host');
}

/** A file that is not a readable safetensors file, or a write request that cannot be encoded. */
export class SafetensorsError extends UserError {
  override name = 'SafetensorsError';
}

function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && Object.hasOwn(BYTES, value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Names what a non-safetensors file probably is, from its first bytes, so the user knows what they sent. */
function guessForeignFormat(head: Buffer): string | undefined {
  if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
    return 'it looks like a zip archive (a PyTorch .pt/.pth file?)';
  }
  if (head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return 'it looks like a Python pickle (a .pkl file?)';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'it looks like a gzip archive';
  return undefined;
}

const FOREIGN_FORMAT_HINT = 'import it first: facestyle import <file> --out checkpoints/NAME.safetensors';

export class SafetensorsReader {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly entries: Map<string, TensorEntry>,
    readonly metadata: Record<string, string>,
    private readonly dataStart: number,
    /** Size of the file when it was opened. */
    readonly fileBytes: number,
  ) {}

  static async open(path: string): Promise<SafetensorsReader> {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size < 8) throw new SafetensorsError(`${path}: not a safetensors file (only ${size} bytes)`);
      const head = Buffer.alloc(8);
      await handle.read(head, 0, 8, 0);
      const foreign = guessForeignFormat(head);
      if (foreign)
        throw new SafetensorsError(`${path}: not a safetensors file: ${foreign}`, FOREIGN_FORMAT_HINT);
      const headerLen = Number(head.readBigUInt64LE(0));
      if (headerLen < 2 || headerLen > MAX_HEADER_BYTES) {
        throw new SafetensorsError(
          `${path}: not a safetensors file (header length field reads ${headerLen})`,
        );
      }
      if (8 + headerLen > size) {
        throw new SafetensorsError(
          `${path}: file is truncated: its header needs ${8 + headerLen} bytes but the file has ${size} (incomplete download or copy?)`,
        );
      }
      const headerBuf = Buffer.alloc(headerLen);
      await handle.read(headerBuf, 0, headerLen, 8);
      const dataStart = 8 + headerLen;
      const { entries, metadata } = parseHeader(path, headerBuf);
      let dataEnd = 0;
      for (const entry of entries.values()) dataEnd = Math.max(dataEnd, entry.end);
      if (dataStart + dataEnd > size) {
        throw new SafetensorsError(
          `${path}: file is truncated: its tensors need ${dataStart + dataEnd} bytes but the file has ${size} (incomplete download or copy?)`,
        );
      }
      return new SafetensorsReader(path, handle, entries, metadata, dataStart, size);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  private entry(name: string): TensorEntry {
    const entry = this.entries.get(name);
    if (!entry) throw new SafetensorsError(`${this.path}: no tensor named ${name}`);
    return entry;
  }

  /** Reads a tensor's bytes into `target`, which must be exactly the tensor's byte length. */
  private async readInto(entry: TensorEntry, target: Uint8Array): Promise<void> {
    let done = 0;
    while (done < target.length) {
      const { bytesRead } = await this.handle.read(
        target,
        done,
        target.length - done,
        this.dataStart + entry.begin + done,
      );
      if (bytesRead === 0) {
        throw new SafetensorsError(
          `${this.path}: file ended while reading tensor ${entry.name} (truncated?)`,
        );
      }
      done += bytesRead;
    }
  }

  /** Reads one tensor's raw bytes. */
  async readBytes(name: string): Promise<Buffer> {
    const entry = this.entry(name);
    const buf = Buffer.allocUnsafeSlow(entry.end - entry.begin);
    await this.readInto(entry, buf);
    return buf;
  }

  /**
   * Reads one tensor and decodes it to float32. F32, F16 and BF16 are read straight into an
   * aligned typed array, so the only copy is the one the caller keeps.
   */
  async readFloat32(name: string): Promise<TensorData> {
    const entry = this.entry(name);
    const count = elementCount(entry.shape);
    if (entry.dtype === 'F32') {
      assertLittleEndianHost();
      const data = new Float32Array(count);
      await this.readInto(entry, new Uint8Array(data.buffer));
      return { name, shape: entry.shape, data };
    }
    if (entry.dtype === 'F16' || entry.dtype === 'BF16') {
      assertLittleEndianHost();
      const bits = new Uint16Array(count);
      await this.readInto(entry, new Uint8Array(bits.buffer));
      return {
        name,
        shape: entry.shape,
        data: entry.dtype === 'F16' ? halfBitsToFloat32(bits) : bfloatBitsToFloat32(bits),
      };
    }
    return { name, shape: entry.shape, data: decodeToFloat32(await this.readBytes(name), entry.dtype) };
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

function parseHeader(
  path: string,
  headerBuf: Buffer,
): { entries: Map<string, TensorEntry>; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(headerBuf.toString('utf8'));
  } catch {
    throw new SafetensorsError(
      `${path}: not a safetensors file, or a corrupted one: its header is not valid JSON`,
    );
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsError(`${path}: not a safetensors file: its header is not a JSON object`);
  }
  const entries = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(path, raw);
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const bad = (problem: string) =>
      new SafetensorsError(`${path}: corrupted header: tensor ${name} ${problem}`);
    if (typeof info !== 'object' || info === null) throw bad('has no description');
    if (!isDType(info.dtype)) throw bad(`has unsupported dtype ${JSON.stringify(info.dtype)}`);
    if (!Array.isArray(info.shape) || !info.shape.every(isNonNegativeInteger))
      throw bad('has an invalid shape');
    const offsets = info.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
      throw bad('has invalid data_offsets');
    }
    const [begin, end] = offsets as [number, number];
    const shape = info.shape as number[];
    const expectedBytes = elementCount(shape) * BYTES[info.dtype];
    if (end - begin !== expectedBytes) {
      throw bad(`spans ${end - begin} bytes but ${info.dtype}[${shape}] needs ${expectedBytes}`);
    }
    entries.set(name, { name, dtype: info.dtype, shape, begin, end });
  }
  return { entries, metadata };
}

function parseMetadata(path: string, raw: unknown): Record<string, string> {
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SafetensorsError(`${path}: corrupted header: __metadata__ is not an object`);
  }
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string') {
      throw new SafetensorsError(`${path}: corrupted header: __metadata__.${key} is not a string`);
    }
  }
  return raw as Record<string, string>;
}

// F16 decodes through a 65536-entry table (256 KiB, built on first use): one load per element.
let halfTable: Float32Array | undefined;

function halfToFloatTable(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

function halfBitsToFloat32(bits: Uint16Array): Float32Array {
  const table = halfToFloatTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

/** bfloat16 is the top half of a float32, so widening is a shift. */
function bfloatBitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

/** Copies little-endian bytes into a fresh, aligned buffer (the input may sit at any offset). */
function alignedCopy(bytes: Uint8Array, elementBytes: number): ArrayBuffer {
  assertLittleEndianHost();
  const buffer = new ArrayBuffer(bytes.length - (bytes.length % elementBytes));
  new Uint8Array(buffer).set(bytes.subarray(0, buffer.byteLength));
  return buffer;
}

/** Decodes little-endian tensor bytes to a new float32 array (never a view of `bytes`). */
export function decodeToFloat32(bytes: Uint8Array, dtype: SafetensorsDType): Float32Array {
  switch (dtype) {
    case 'F32':
      return new Float32Array(alignedCopy(bytes, 4));
    case 'F64':
      return Float32Array.from(new Float64Array(alignedCopy(bytes, 8)));
    case 'F16':
      return halfBitsToFloat32(new Uint16Array(alignedCopy(bytes, 2)));
    case 'BF16':
      return bfloatBitsToFloat32(new Uint16Array(alignedCopy(bytes, 2)));
    case 'I64': {
      const wide = new BigInt64Array(alignedCopy(bytes, 8));
      const out = new Float32Array(wide.length);
      for (let i = 0; i < wide.length; i++) out[i] = Number(wide[i]);
      return out;
    }
    case 'I32':
      return Float32Array.from(new Int32Array(alignedCopy(bytes, 4)));
    case 'U8':
    case 'BOOL':
      return Float32Array.from(bytes);
  }
}

/** Encodes float32 values as little-endian `dtype` bytes in a new buffer (never a view of `data`). */
export function encodeFromFloat32(data: Float32Array, dtype: FloatWriteDType): Buffer {
  assertLittleEndianHost();
  if (dtype === 'F32') return Buffer.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  const floatBits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const buf = Buffer.allocUnsafeSlow(data.length * 2);
  const out = new Uint16Array(buf.buffer, buf.byteOffset, data.length);
  if (dtype === 'F16') {
    for (let i = 0; i < out.length; i++) out[i] = halfBitsFromFloatBits(floatBits[i]);
  } else {
    for (let i = 0; i < out.length; i++) out[i] = bfloatBitsFromFloatBits(floatBits[i]);
  }
  return buf;
}

/** float32 bits -> bfloat16 bits, round to nearest even; NaN stays NaN (quieted). */
function bfloatBitsFromFloatBits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x007fffff) !== 0) return (x >>> 16) | 0x40;
  // The largest non-NaN pattern (0xff800000) plus the rounding bias stays below 2^32, so no wrap.
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

const scratchFloat = new Float32Array(1);
const scratchBits = new Uint32Array(scratchFloat.buffer);

/** float32 -> IEEE half, round to nearest even, overflow to infinity. */
export function floatToHalf(value: number): number {
  scratchFloat[0] = value;
  return halfBitsFromFloatBits(scratchBits[0]);
}

function halfBitsFromFloatBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Half subnormal: shift the full 24-bit significand so that one unit is 2^-24.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and overflows to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

export interface TensorToWrite {
  name: string;
  shape: number[];
  data: Float32Array;
  dtype?: FloatWriteDType;
}

/** A tensor to write whose values are produced only when the writer reaches it. */
export interface TensorSpec {
  name: string;
  shape: number[];
  dtype?: FloatWriteDType;
}

/**
 * Writes a safetensors file atomically: to a temporary file beside the target, fsynced, then
 * renamed over it, so a crash never leaves a half-written checkpoint under the real name.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  metadata: Record<string, string> = {},
  defaultDtype: FloatWriteDType = 'F32',
): Promise<void> {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  await writeSafetensorsStreamed(
    path,
    tensors,
    async (spec) => byName.get(spec.name)!.data,
    metadata,
    defaultDtype,
  );
}

/**
 * Like writeSafetensors, but asks `valuesOf` for each tensor's values only when it is written, so
 * memory holds one tensor's values at a time (a GPU-resident model is downloaded tensor by tensor).
 */
export async function writeSafetensorsStreamed(
  path: string,
  specs: TensorSpec[],
  valuesOf: (spec: TensorSpec) => Promise<Float32Array>,
  metadata: Record<string, string> = {},
  defaultDtype: FloatWriteDType = 'F32',
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const sorted = [...specs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].name === sorted[i - 1].name)
      throw new SafetensorsError(`tensor ${sorted[i].name} is listed twice`);
  }
  for (const spec of sorted) {
    if (spec.name === '__metadata__') throw new SafetensorsError('a tensor cannot be named __metadata__');
    const dtype = spec.dtype ?? defaultDtype;
    const bytes = elementCount(spec.shape) * BYTES[dtype];
    header[spec.name] = { dtype, shape: spec.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let headerJson = Buffer.from(JSON.stringify(header), 'utf8');
  // The data section is 8-byte aligned by padding the header with spaces, as the reference writer does.
  const pad = (8 - (headerJson.length % 8)) % 8;
  if (pad) headerJson = Buffer.concat([headerJson, Buffer.alloc(pad, 0x20)]);
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const handle = await open(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerJson.length));
    await handle.write(len);
    await handle.write(headerJson);
    for (const spec of sorted) {
      const values = await valuesOf(spec);
      const count = elementCount(spec.shape);
      if (values.length !== count) {
        throw new SafetensorsError(
          `tensor ${spec.name}: shape [${spec.shape}] does not match ${values.length} values`,
        );
      }
      await handle.write(encodeFromFloat32(values, spec.dtype ?? defaultDtype));
    }
    await handle.sync();
    await handle.close();
    await rename(tmp, path);
  } catch (err) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}
