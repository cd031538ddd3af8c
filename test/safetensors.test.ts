import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../src/errors.ts';
import {
  decodeToFloat32,
  encodeFromFloat32,
  floatToHalf,
  halfToFloat,
  SafetensorsError,
  SafetensorsReader,
  writeSafetensors,
  writeSafetensorsStreamed,
} from '../src/model/checkpoint/safetensors.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'facestyle-safetensors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function floatFromBits(bits: number): number {
  return new Float32Array(new Uint32Array([bits]).buffer)[0];
}

function bitsOfFloats(values: Float32Array): number[] {
  return [...new Uint32Array(values.buffer, values.byteOffset, values.length)];
}

function halfBytes(codes: number[]): Buffer {
  const buf = Buffer.alloc(codes.length * 2);
  for (const [i, code] of codes.entries()) buf.writeUInt16LE(code, i * 2);
  return buf;
}

function isHalfNaN(h: number): boolean {
  return (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
}

describe('float16', () => {
  it('decodes anchor codes, including -0, subnormals, infinities and NaN', () => {
    const anchors: Array<[number, number]> = [
      [0x0000, 0],
      [0x3c00, 1],
      [0xc000, -2],
      [0x3555, 0.333251953125],
      [0x7bff, 65504],
      [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24],
      [0x0400, 2 ** -14],
      [0x7c00, Number.POSITIVE_INFINITY],
      [0xfc00, Number.NEGATIVE_INFINITY],
    ];
    const decoded = decodeToFloat32(halfBytes([...anchors.map(([h]) => h), 0x8000, 0x7e00, 0xfc01]), 'F16');
    for (const [i, [, value]] of anchors.entries()) expect(decoded[i]).toBe(value);
    expect(Object.is(decoded[anchors.length], -0)).toBe(true);
    expect(Number.isNaN(decoded[anchors.length + 1])).toBe(true);
    expect(Number.isNaN(decoded[anchors.length + 2])).toBe(true);
  });

  it('decodes all 65536 codes monotonically and symmetrically', () => {
    const codes = Array.from({ length: 65536 }, (_, h) => h);
    const decoded = decodeToFloat32(halfBytes(codes), 'F16');
    for (let h = 1; h <= 0x7c00; h++) expect(decoded[h] > decoded[h - 1]).toBe(true);
    for (let h = 0; h < 0x8000; h++) {
      if (isHalfNaN(h)) expect(Number.isNaN(decoded[h]) && Number.isNaN(decoded[h | 0x8000])).toBe(true);
      else expect(decoded[h | 0x8000]).toBe(-decoded[h]);
    }
  });

  it('encodes every non-NaN half value back to its own code', () => {
    for (let h = 0; h < 65536; h++) {
      if (!isHalfNaN(h)) expect(floatToHalf(halfToFloat(h))).toBe(h);
    }
  });

  it('rounds to nearest, ties to even, overflowing to infinity and underflowing to signed zero', () => {
    const cases: Array<[number, number]> = [
      [1 + 2 ** -11, 0x3c00], // tie, stays on even 1.0
      [1 + 3 * 2 ** -11, 0x3c02], // tie, goes up to the even neighbour
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
      [65519, 0x7bff],
      [65520, 0x7c00],
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal
      [2 ** -25 + 2 ** -40, 0x0001],
      [3 * 2 ** -25, 0x0002], // subnormal tie to even
      [2 ** -14 - 2 ** -25, 0x0400], // largest subnormal / smallest normal tie
      [1e-10, 0x0000],
      [-1e-10, 0x8000],
      [floatFromBits(0x00000001), 0x0000], // float32 subnormal
      [-0, 0x8000],
      [Number.POSITIVE_INFINITY, 0x7c00],
      [Number.NEGATIVE_INFINITY, 0xfc00],
    ];
    for (const [value, code] of cases) expect([value, floatToHalf(value)]).toEqual([value, code]);
    expect(isHalfNaN(floatToHalf(Number.NaN))).toBe(true);
    expect(isHalfNaN(floatToHalf(floatFromBits(0x7f800001)))).toBe(true);
  });

  it('picks the nearest half for random float32 values across the whole range', () => {
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let k = 0; k < 20000; k++) {
      const value = Math.fround((random() - 0.5) * 2 ** Math.floor(random() * 48 - 30));
      const h = floatToHalf(value);
      const error = Math.abs(value - halfToFloat(h));
      for (const neighbour of [h - 1, h + 1]) {
        if ((neighbour & 0x7fff) > 0x7bff || (neighbour & 0x8000) !== (h & 0x8000)) continue;
        expect(error).toBeLessThanOrEqual(Math.abs(value - halfToFloat(neighbour)));
      }
    }
  });

  it('round-trips through encodeFromFloat32', () => {
    const values = new Float32Array([0.5, -3.25, 1024, 2 ** -24, -0]);
    const back = decodeToFloat32(encodeFromFloat32(values, 'F16'), 'F16');
    expect(bitsOfFloats(back)).toEqual(bitsOfFloats(values));
  });
});

describe('bfloat16', () => {
  const encodeBits = (bits: number) =>
    encodeFromFloat32(new Float32Array([floatFromBits(bits)]), 'BF16').readUInt16LE(0);

  it('rounds to nearest even and keeps NaN, infinities and -0', () => {
    expect(encodeBits(0x3f800000)).toBe(0x3f80);
    expect(encodeBits(0x3f808000)).toBe(0x3f80); // tie, even stays
    expect(encodeBits(0x3f818000)).toBe(0x3f82); // tie, odd goes up
    expect(encodeBits(0x3f808001)).toBe(0x3f81);
    expect(encodeBits(0x7f7fffff)).toBe(0x7f80); // largest float32 rounds to infinity
    expect(encodeBits(0xff800000)).toBe(0xff80);
    expect(encodeBits(0x80000000)).toBe(0x8000);
    expect(encodeBits(0x00010000)).toBe(0x0001); // float32 subnormal, exact
    const nan = encodeBits(0x7f800001); // payload only in the dropped bits: must not become infinity
    expect((nan & 0x7f80) === 0x7f80 && (nan & 0x7f) !== 0).toBe(true);
  });

  it('decodes by widening to the top half of a float32', () => {
    const decoded = decodeToFloat32(halfBytes([0x3f80, 0xc040, 0x7f80, 0x8000, 0x0001, 0x7fc0]), 'BF16');
    expect(bitsOfFloats(decoded)).toEqual([
      0x3f800000, 0xc0400000, 0x7f800000, 0x80000000, 0x00010000, 0x7fc00000,
    ]);
  });
});

describe('decodeToFloat32', () => {
  it('reads F32 from a buffer at an unaligned offset without aliasing it', () => {
    const values = new Float32Array([1.5, -2, 3e-39, Number.NaN]);
    const backing = Buffer.alloc(values.byteLength + 1);
    Buffer.from(values.buffer).copy(backing, 1);
    const view = backing.subarray(1);
    const decoded = decodeToFloat32(view, 'F32');
    expect(bitsOfFloats(decoded)).toEqual(bitsOfFloats(values));
    view[0] ^= 0xff;
    expect(decoded[0]).toBe(1.5);
  });

  it('converts F64, I64, I32, U8', () => {
    expect([...decodeToFloat32(Buffer.from(new Float64Array([0.25, -1e3]).buffer), 'F64')]).toEqual([
      0.25, -1000,
    ]);
    expect([...decodeToFloat32(Buffer.from(new BigInt64Array([-7n, 1n << 40n]).buffer), 'I64')]).toEqual([
      -7,
      2 ** 40,
    ]);
    expect([...decodeToFloat32(Buffer.from(new Int32Array([-3, 9]).buffer), 'I32')]).toEqual([-3, 9]);
    expect([...decodeToFloat32(Buffer.from([0, 200]), 'U8')]).toEqual([0, 200]);
  });
});

describe('writeSafetensors and SafetensorsReader', () => {
  it('round-trips tensors, dtypes and metadata, with an 8-byte aligned data section', async () => {
    const path = join(dir, 'roundtrip.safetensors');
    const exact = new Float32Array([0, -0, 1e-45, -3.5, Number.POSITIVE_INFINITY, floatFromBits(0x7fc01234)]);
    const halves = new Float32Array([0.5, 65504, -(2 ** -24)]);
    const scalar = new Float32Array([Math.PI]);
    await writeSafetensors(
      path,
      [
        { name: 'b.exact', shape: [2, 3], data: exact },
        { name: 'a.half', shape: [3], data: halves, dtype: 'F16' },
        { name: 'c.brain', shape: [1], data: new Float32Array([1.5]), dtype: 'BF16' },
        { name: 'd.scalar', shape: [], data: scalar },
      ],
      { note: 'hello' },
    );
    const bytes = await readFile(path);
    expect(Number(bytes.readBigUInt64LE(0)) % 8).toBe(0);
    const reader = await SafetensorsReader.open(path);
    try {
      expect(reader.names()).toEqual(['a.half', 'b.exact', 'c.brain', 'd.scalar']);
      expect(reader.metadata).toEqual({ note: 'hello' });
      expect(reader.entries.get('a.half')?.dtype).toBe('F16');
      const read = await reader.readFloat32('b.exact');
      expect(read.shape).toEqual([2, 3]);
      expect(bitsOfFloats(read.data)).toEqual(bitsOfFloats(exact));
      expect([...(await reader.readFloat32('a.half')).data]).toEqual([...halves]);
      expect([...(await reader.readFloat32('c.brain')).data]).toEqual([1.5]);
      expect((await reader.readFloat32('d.scalar')).data[0]).toBe(Math.fround(Math.PI));
      expect((await reader.readBytes('a.half')).length).toBe(6);
      await expect(reader.readFloat32('nope')).rejects.toThrow(/no tensor named nope/);
    } finally {
      await reader.close();
    }
  });

  it('streams values on demand and leaves an existing file intact when a write fails', async () => {
    const path = join(dir, 'atomic.safetensors');
    await writeSafetensors(path, [{ name: 'x', shape: [2], data: new Float32Array([1, 2]) }]);
    const before = await readFile(path);
    const asked: string[] = [];
    const failing = writeSafetensorsStreamed(
      path,
      [
        { name: 'a', shape: [1] },
        { name: 'b', shape: [1] },
      ],
      async (spec) => {
        asked.push(spec.name);
        if (spec.name === 'b') throw new Error('download failed');
        return new Float32Array([7]);
      },
    );
    await expect(failing).rejects.toThrow('download failed');
    expect(asked).toEqual(['a', 'b']);
    expect(await readFile(path)).toEqual(before);
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
    await expect(
      writeSafetensors(path, [{ name: 'x', shape: [3], data: new Float32Array(2) }]),
    ).rejects.toThrow(/shape \[3\] does not match 2 values/);
    expect(await readFile(path)).toEqual(before);
  });
});

describe('SafetensorsReader rejects bad files with clear messages', () => {
  async function valid(): Promise<Buffer> {
    const path = join(dir, 'valid.safetensors');
    await writeSafetensors(path, [{ name: 'w', shape: [4, 4], data: new Float32Array(16).fill(1) }]);
    return readFile(path);
  }

  async function openBytes(name: string, bytes: Buffer): Promise<unknown> {
    const path = join(dir, name);
    await writeFile(path, bytes);
    try {
      await SafetensorsReader.open(path);
    } catch (err) {
      return err;
    }
    throw new Error(`${name} opened without error`);
  }

  function withHeader(header: unknown): Buffer {
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([len, json, Buffer.alloc(64)]);
  }

  it('names the problem and the file', async () => {
    const good = await valid();
    const cases: Array<[string, Buffer, RegExp]> = [
      ['tiny.safetensors', Buffer.from([1, 2, 3]), /only 3 bytes/],
      ['zip.safetensors', Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(60)]), /zip archive/],
      ['pickle.safetensors', Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.alloc(60)]), /Python pickle/],
      ['huge-header.safetensors', Buffer.alloc(64, 0xff), /header length field/],
      ['header-cut.safetensors', good.subarray(0, 20), /truncated: its header needs/],
      ['data-cut.safetensors', good.subarray(0, good.length - 5), /truncated: its tensors need/],
      [
        'not-json.safetensors',
        Buffer.concat([good.subarray(0, 8), Buffer.from('x'), good.subarray(9)]),
        /not valid JSON/,
      ],
      ['array.safetensors', withHeader([1, 2]), /not a JSON object/],
      [
        'dtype.safetensors',
        withHeader({ t: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }),
        /unsupported dtype/,
      ],
      [
        'offsets.safetensors',
        withHeader({ t: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }),
        /spans 8 bytes/,
      ],
      [
        'shape.safetensors',
        withHeader({ t: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }),
        /invalid shape/,
      ],
      ['meta.safetensors', withHeader({ __metadata__: { n: 3 } }), /__metadata__\.n is not a string/],
    ];
    for (const [name, bytes, message] of cases) {
      const err = await openBytes(name, bytes);
      expect(err, name).toBeInstanceOf(SafetensorsError);
      expect(err, name).toBeInstanceOf(UserError);
      expect((err as Error).message, name).toMatch(message);
      expect((err as Error).message, name).toContain(name);
    }
    expect(
      ((await openBytes('zip2.safetensors', Buffer.from('PK\x03\x04aaaaaaaa'))) as UserError).hint,
    ).toMatch(/facestyle import <file> --out checkpoints\/NAME\.safetensors/);
  });
});
