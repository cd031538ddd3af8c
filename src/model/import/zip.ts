// Zip archives as torch.save uses them: records stored uncompressed, each record's data aligned to
// 64 bytes (so torch.load(mmap=True) can map it). Reading goes through yauzl; writing is ours.
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { CheckpointError } from '../checkpoint/io.ts';

/**
 * Past this many inflated bytes a compressed record may be at most MAX_INFLATE_RATIO times its
 * compressed size. Weights barely compress (about 1.1:1); a small record of zeros may do 1000:1
 * and cannot hurt.
 */
export const RATIO_FREE_BYTES = 2 ** 20;
export const MAX_INFLATE_RATIO = 20;

/**
 * All compressed records of one archive together may inflate to at most twice the file's size
 * plus this: a real archive (even one someone re-zipped with compression) holds its tensors, so
 * memory stays about twice the real tensor data, whatever the headers declare.
 */
export const INFLATE_BUDGET_SLACK_BYTES = 16 * 2 ** 20;

/** The most bytes a record compressed to `compressedSize` bytes may inflate to. */
export function inflateAllowance(compressedSize: number): number {
  return Math.max(RATIO_FREE_BYTES, compressedSize * MAX_INFLATE_RATIO);
}

function mebibytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export class ZipArchiveReader {
  private constructor(
    private readonly zip: ZipFile,
    private readonly file: FileHandle,
    private readonly fileBytes: number,
    private readonly source: string,
    /** Records by name. */
    readonly entries: Map<string, Entry>,
  ) {
    this.inflateBudget = 2 * fileBytes + INFLATE_BUDGET_SLACK_BYTES;
    this.storedBudget = fileBytes;
  }

  /**
   * Bytes stored records may still claim. Records of a real archive never overlap, so together
   * they hold at most the file; many directory records pointing at the same data (the
   * non-recursive zip bomb) would otherwise load one tensor's bytes once per record.
   */
  private storedBudget: number;

  /** Bytes compressed records may still inflate to (see INFLATE_BUDGET_SLACK_BYTES). */
  private inflateBudget: number;

  static async open(path: string): Promise<ZipArchiveReader> {
    let zip: ZipFile;
    try {
      zip = await yauzl.openPromise(path, { lazyEntries: true, autoClose: false, validateEntrySizes: true });
    } catch (err) {
      const text = (err as Error).message;
      if (/end of central directory record signature not found/.test(text)) {
        throw new CheckpointError(
          `${path}: the zip archive has no central directory: the file is truncated (incomplete download or copy?)`,
        );
      }
      throw new CheckpointError(`${path}: damaged zip archive: ${text}`, undefined, err);
    }
    const entries = new Map<string, Entry>();
    try {
      for await (const entry of zip.eachEntry()) entries.set(entry.fileName, entry);
    } catch (err) {
      zip.close();
      throw new CheckpointError(`${path}: damaged zip archive: ${(err as Error).message}`, undefined, err);
    }
    const file = await open(path, 'r');
    const { size } = await file.stat();
    return new ZipArchiveReader(zip, file, size, path, entries);
  }

  private refuse(name: string, why: string): CheckpointError {
    return new CheckpointError(
      `${this.source}: refusing record ${name}: ${why}`,
      'a torch.save archive holds each record once, uncompressed; this one looks built to exhaust memory (a zip bomb)',
    );
  }

  /**
   * The whole record, in memory. Nothing of its declared size is allocated before the header is
   * checked against the file (stored records) or the ratio limit and the archive's inflate budget
   * (compressed ones); a compressed record is inflated chunk by chunk under a running cap, so a
   * header that lies about its size cannot get past it either.
   */
  async read(name: string): Promise<Buffer> {
    const entry = this.entries.get(name);
    if (!entry) throw new CheckpointError(`${this.source}: the archive has no record ${name}`);
    const declared = entry.uncompressedSize;
    if (entry.compressionMethod !== 0) {
      const allowance = Math.min(inflateAllowance(entry.compressedSize), this.inflateBudget);
      if (declared > allowance)
        throw this.refuse(
          name,
          `it declares ${mebibytes(declared)} from ${mebibytes(entry.compressedSize)} compressed, more than this archive may inflate to`,
        );
      const out = await this.inflate(name, entry, declared);
      this.inflateBudget -= out.length;
      return out;
    }
    try {
      // Stored records (all torch.save writes) are read in one call, several times faster than
      // yauzl's chunked stream.
      if (entry.compressedSize !== declared) throw new Error('stored record sizes disagree');
      const { fileDataStart } = await this.zip.readLocalFileHeaderPromise(entry, { minimal: true });
      if (fileDataStart + declared > this.fileBytes) throw new Error('unexpected end of file');
      if (declared > this.storedBudget)
        throw this.refuse(
          name,
          'its records together claim more bytes than the file holds (records sharing their data)',
        );
      this.storedBudget -= declared;
      const out = Buffer.allocUnsafeSlow(declared);
      let filled = 0;
      while (filled < out.length) {
        const { bytesRead } = await this.file.read(out, filled, out.length - filled, fileDataStart + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      if (filled !== out.length) throw new Error('unexpected end of file');
      return out;
    } catch (err) {
      if (err instanceof CheckpointError) throw err;
      throw this.damaged(name, err);
    }
  }

  private async inflate(name: string, entry: Entry, cap: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let filled = 0;
    let stream: NodeJS.ReadableStream | undefined;
    try {
      stream = await this.zip.openReadStreamPromise(entry);
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        filled += chunk.length;
        if (filled > cap)
          throw this.refuse(name, `it inflates past the ${mebibytes(cap)} its header declares`);
        chunks.push(chunk);
      }
    } catch (err) {
      (stream as { destroy?: () => void } | undefined)?.destroy?.();
      if (err instanceof CheckpointError) throw err;
      throw this.damaged(name, err);
    }
    if (filled !== entry.uncompressedSize)
      throw new CheckpointError(`${this.source}: record ${name} is cut short (truncated or damaged file?)`);
    return Buffer.concat(chunks, filled);
  }

  private damaged(name: string, err: unknown): CheckpointError {
    return new CheckpointError(
      `${this.source}: cannot read record ${name}: ${(err as Error).message} (truncated or damaged file?)`,
      undefined,
      err,
    );
  }

  async close(): Promise<void> {
    this.zip.close();
    await this.file.close();
  }
}

export interface ZipRecordToWrite {
  name: string;
  data: Uint8Array;
}

const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const VERSION = 20;
const UTF8_NAMES = 0x0800;
/** 1980-01-01, the earliest DOS date: archives come out byte-identical for the same content. */
const DOS_DATE = (1 << 5) | 1;
const DATA_ALIGNMENT = 64;
/** The extra-field id torch's writer pads with ("FB"). */
const PADDING_FIELD = 0x4246;
const ZIP32_LIMIT = 0xffffffff;

interface WrittenRecord {
  name: Buffer;
  crc: number;
  size: number;
  offset: number;
}

function paddingFor(dataStartWithoutExtra: number): Buffer {
  let pad = (DATA_ALIGNMENT - (dataStartWithoutExtra % DATA_ALIGNMENT)) % DATA_ALIGNMENT;
  if (pad === 0) return Buffer.alloc(0);
  if (pad < 4) pad += DATA_ALIGNMENT; // An extra field needs 4 bytes of its own header.
  const extra = Buffer.alloc(pad);
  extra.writeUInt16LE(PADDING_FIELD, 0);
  extra.writeUInt16LE(pad - 4, 2);
  return extra;
}

/**
 * Writes an uncompressed zip atomically (temporary file, fsync, rename). Records come from an
 * async iterable, so only one record's data is in memory at a time.
 */
export async function writeStoredZip(path: string, records: AsyncIterable<ZipRecordToWrite>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const handle = await open(tmp, 'w');
  try {
    const written: WrittenRecord[] = [];
    let offset = 0;
    const write = async (buf: Uint8Array) => {
      await handle.write(buf);
      offset += buf.length;
    };
    for await (const { name, data } of records) {
      const nameBytes = Buffer.from(name, 'utf8');
      const extra = paddingFor(offset + 30 + nameBytes.length);
      const record = { name: nameBytes, crc: crc32(data), size: data.length, offset };
      if (offset + 30 + nameBytes.length + extra.length + data.length > ZIP32_LIMIT)
        throw new CheckpointError(`cannot write ${path}: archives over 4 GiB are not supported`);
      const header = Buffer.alloc(30);
      header.writeUInt32LE(LOCAL_HEADER, 0);
      header.writeUInt16LE(VERSION, 4);
      header.writeUInt16LE(UTF8_NAMES, 6);
      header.writeUInt16LE(0, 8); // stored
      header.writeUInt16LE(0, 10);
      header.writeUInt16LE(DOS_DATE, 12);
      header.writeUInt32LE(record.crc, 14);
      header.writeUInt32LE(data.length, 18);
      header.writeUInt32LE(data.length, 22);
      header.writeUInt16LE(nameBytes.length, 26);
      header.writeUInt16LE(extra.length, 28);
      await write(header);
      await write(nameBytes);
      await write(extra);
      await write(data);
      written.push(record);
    }
    if (written.length > 0xffff)
      throw new CheckpointError(`cannot write ${path}: too many records for a zip`);
    const directoryStart = offset;
    for (const record of written) {
      const header = Buffer.alloc(46);
      header.writeUInt32LE(CENTRAL_HEADER, 0);
      header.writeUInt16LE(VERSION, 4);
      header.writeUInt16LE(VERSION, 6);
      header.writeUInt16LE(UTF8_NAMES, 8);
      header.writeUInt16LE(0, 10);
      header.writeUInt16LE(0, 12);
      header.writeUInt16LE(DOS_DATE, 14);
      header.writeUInt32LE(record.crc, 16);
      header.writeUInt32LE(record.size, 20);
      header.writeUInt32LE(record.size, 24);
      header.writeUInt16LE(record.name.length, 28);
      header.writeUInt32LE(record.offset, 42);
      await write(header);
      await write(record.name);
    }
    if (offset > ZIP32_LIMIT)
      throw new CheckpointError(`cannot write ${path}: archives over 4 GiB are not supported`);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(END_OF_CENTRAL_DIRECTORY, 0);
    end.writeUInt16LE(written.length, 8);
    end.writeUInt16LE(written.length, 10);
    end.writeUInt32LE(offset - directoryStart, 12);
    end.writeUInt32LE(directoryStart, 16);
    await write(end);
    await handle.sync();
    await handle.close();
    await rename(tmp, path);
  } catch (err) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}
