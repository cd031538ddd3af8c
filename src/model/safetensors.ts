// safetensors: an 8-byte little-endian header length, a JSON header, then raw little-endian tensor
// bytes. Reading opens the file once and reads each tensor's byte range on demand, so a large
// checkpoint is never held in memory twice.
import { open, rename, rm, type FileHandle } from 'node:fs/promises';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'U8' | 'BOOL';

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

const BYTES: Record<SafetensorsDType, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, U8: 1, BOOL: 1 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

export class SafetensorsReader {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly entries: Map<string, TensorEntry>,
    readonly metadata: Record<string, string>,
    private readonly dataStart: number,
  ) {}

  static async open(path: string): Promise<SafetensorsReader> {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size < 8) throw new SafetensorsError(`${path}: not a safetensors file (only ${size} bytes)`);
      const lenBuf = Buffer.alloc(8);
      await handle.read(lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen <= 0 || headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
        throw new SafetensorsError(`${path}: not a safetensors file (header length ${headerLen}, file ${size} bytes)`);
      }
      const headerBuf = Buffer.alloc(headerLen);
      await handle.read(headerBuf, 0, headerLen, 8);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(headerBuf.toString('utf8'));
      } catch {
        throw new SafetensorsError(`${path}: safetensors header is not valid JSON`);
      }
      const dataStart = 8 + headerLen;
      const entries = new Map<string, TensorEntry>();
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header)) {
        if (name === '__metadata__') {
          metadata = (raw ?? {}) as Record<string, string>;
          continue;
        }
        const info = raw as { dtype: SafetensorsDType; shape: number[]; data_offsets: [number, number] };
        if (!(info.dtype in BYTES)) throw new SafetensorsError(`${path}: tensor ${name} has unsupported dtype ${info.dtype}`);
        const [begin, end] = info.data_offsets;
        const count = info.shape.reduce((a, b) => a * b, 1);
        if (end - begin !== count * BYTES[info.dtype] || dataStart + end > size) {
          throw new SafetensorsError(
            `${path}: tensor ${name} extends past the end of the file or has a wrong size (truncated download?)`,
          );
        }
        entries.set(name, { name, dtype: info.dtype, shape: info.shape, begin, end });
      }
      return new SafetensorsReader(path, handle, entries, metadata, dataStart);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  /** Reads one tensor's raw bytes. */
  async readBytes(name: string): Promise<Buffer> {
    const entry = this.entries.get(name);
    if (!entry) throw new SafetensorsError(`${this.path}: no tensor named ${name}`);
    const buf = Buffer.alloc(entry.end - entry.begin);
    await this.handle.read(buf, 0, buf.length, this.dataStart + entry.begin);
    return buf;
  }

  /** Reads one tensor and decodes it to float32. */
  async readFloat32(name: string): Promise<TensorData> {
    const entry = this.entries.get(name)!;
    const bytes = await this.readBytes(name);
    return { name, shape: entry.shape, data: decodeToFloat32(bytes, entry.dtype) };
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

export function decodeToFloat32(bytes: Buffer, dtype: SafetensorsDType): Float32Array {
  const n = bytes.length / BYTES[dtype];
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = bytes.readFloatLE(i * 4);
      return out;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = bytes.readDoubleLE(i * 8);
      return out;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(bytes.readUInt16LE(i * 2));
      return out;
    case 'BF16': {
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u32[i] = bytes.readUInt16LE(i * 2) << 16;
      return out;
    }
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(bytes.readBigInt64LE(i * 8));
      return out;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = bytes.readInt32LE(i * 4);
      return out;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = bytes[i];
      return out;
  }
}

export function encodeFromFloat32(data: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): Buffer {
  if (dtype === 'F32') {
    const buf = Buffer.alloc(data.length * 4);
    for (let i = 0; i < data.length; i++) buf.writeFloatLE(data[i], i * 4);
    return buf;
  }
  const buf = Buffer.alloc(data.length * 2);
  if (dtype === 'F16') {
    for (let i = 0; i < data.length; i++) buf.writeUInt16LE(floatToHalf(data[i]), i * 2);
  } else {
    const u32 = new Uint32Array(Float32Array.from(data).buffer);
    for (let i = 0; i < data.length; i++) {
      // Round to nearest even on the dropped 16 bits; NaN stays NaN.
      const x = u32[i];
      const isNaN = (x & 0x7f800000) === 0x7f800000 && (x & 0x007fffff) !== 0;
      const rounded = isNaN ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
      buf.writeUInt16LE(rounded & 0xffff, i * 2);
    }
  }
  return buf;
}

const f32 = new Float32Array(1);
const u32View = new Uint32Array(f32.buffer);

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** float32 -> IEEE half, round to nearest even, overflow to infinity. */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32View[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
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
  dtype?: 'F32' | 'F16' | 'BF16';
}

/**
 * Writes a safetensors file atomically: to a temporary file beside the target, fsynced, then
 * renamed over it, so a crash never leaves a half-written checkpoint under the real name.
 * Tensors are encoded and written one at a time to bound memory.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  metadata: Record<string, string> = {},
  defaultDtype: 'F32' | 'F16' | 'BF16' = 'F32',
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const t of sorted) {
    const dtype = t.dtype ?? defaultDtype;
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new SafetensorsError(`tensor ${t.name}: shape [${t.shape}] does not match ${t.data.length} values`);
    }
    const bytes = count * BYTES[dtype];
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
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
    for (const t of sorted) await handle.write(encodeFromFloat32(t.data, t.dtype ?? defaultDtype));
    await handle.sync();
    await handle.close();
    await rename(tmp, path);
  } catch (err) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}
