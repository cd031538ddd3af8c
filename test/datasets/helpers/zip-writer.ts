// A minimal zip writer for crafting hostile archives in tests (no zip-writing package is
// installed): STORE or DEFLATE entries, with the header fields an attacker controls exposed.
import { crc32, deflateRawSync } from 'node:zlib';

export interface ZipEntrySpec {
  name: string;
  data?: Buffer | string;
  method?: 'store' | 'deflate';
  /** Unix mode (type and permission bits) stored in the external attributes, e.g. 0o120777 for a symlink. */
  unixMode?: number;
  /** Sets the "encrypted" flag (the data itself is left as is). */
  encrypted?: boolean;
  /** Uncompressed size written to the headers instead of the real one. */
  declaredSize?: number;
  /** Point this entry's central record at the data of entry `sharesDataOf` (no data of its own). */
  sharesDataOf?: number;
}

const UTF8_NAMES = 0x800;
const UNIX_HOST = 3 << 8;

export function buildZip(specs: ZipEntrySpec[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  const offsets: number[] = [];
  const records: Array<{ crc: number; compressed: number; size: number; method: number; flags: number }> = [];
  let offset = 0;
  for (const [index, spec] of specs.entries()) {
    const name = Buffer.from(spec.name, 'utf8');
    const data = Buffer.isBuffer(spec.data) ? spec.data : Buffer.from(spec.data ?? '', 'utf8');
    const method = spec.method === 'store' ? 0 : 8;
    const flags = UTF8_NAMES | (spec.encrypted ? 1 : 0);
    let record: (typeof records)[number];
    if (spec.sharesDataOf !== undefined) {
      record = records[spec.sharesDataOf];
      offsets.push(offsets[spec.sharesDataOf]);
    } else {
      const body = method === 8 ? deflateRawSync(data) : data;
      record = {
        crc: crc32(data) >>> 0,
        compressed: body.length,
        size: spec.declaredSize ?? data.length,
        method,
        flags,
      };
      const local = Buffer.alloc(30);
      local.writeUInt32LE(0x04034b50, 0);
      local.writeUInt16LE(20, 4);
      local.writeUInt16LE(flags, 6);
      local.writeUInt16LE(method, 8);
      local.writeUInt32LE(record.crc, 14);
      local.writeUInt32LE(record.compressed, 18);
      local.writeUInt32LE(record.size, 22);
      local.writeUInt16LE(name.length, 26);
      offsets.push(offset);
      locals.push(local, name, body);
      offset += local.length + name.length + body.length;
    }
    records.push(record);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(spec.unixMode !== undefined ? UNIX_HOST | 20 : 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(record.flags, 8);
    central.writeUInt16LE(record.method, 10);
    central.writeUInt32LE(record.crc, 16);
    central.writeUInt32LE(record.compressed, 20);
    central.writeUInt32LE(record.size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((spec.unixMode ?? 0) << 16) >>> 0, 38);
    central.writeUInt32LE(offsets[index], 42);
    centrals.push(central, name);
  }
  const centralSize = centrals.reduce((sum, b) => sum + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(specs.length, 8);
  end.writeUInt16LE(specs.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}
