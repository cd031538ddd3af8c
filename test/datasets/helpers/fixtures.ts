// Inputs crafted in the tests themselves: distinct synthetic pictures, hostile image files, tar
// archives, and temporary folders that are removed afterwards.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { crc32, deflateSync, gzipSync } from 'node:zlib';
import sharp from 'sharp';
import tar from 'tar-stream';

/** A picture of random 8x8 colour blocks (a different picture for each seed), scaled up. */
export async function blockPicture(
  seed: number,
  width = 320,
  height = 240,
  format: 'png' | 'jpeg' | 'webp' | 'gif' = 'png',
): Promise<Buffer> {
  let state = seed * 2654435761 + 12345;
  const random = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state >>> 24;
  };
  const blocks = Buffer.alloc(8 * 8 * 3);
  for (let i = 0; i < blocks.length; i++) blocks[i] = random();
  return sharp(blocks, { raw: { width: 8, height: 8, channels: 3 } })
    .resize(width, height, { kernel: 'nearest', fit: 'fill' })
    .toFormat(format)
    .toBuffer();
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([length, body, crc]);
}

/** A valid PNG header claiming `width` x `height` RGB pixels, followed by almost no data. */
export function pngClaiming(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(Buffer.alloc(64))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

export async function truncatedJpeg(): Promise<Buffer> {
  const jpeg = await blockPicture(99, 320, 240, 'jpeg');
  return jpeg.subarray(0, Math.floor(jpeg.length * 0.6));
}

export interface TarEntrySpec {
  name: string;
  data?: Buffer | string;
  type?: 'file' | 'symlink' | 'link' | 'directory';
  linkname?: string;
}

export async function buildTar(specs: TarEntrySpec[], gzip = true): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (chunk) => {
      chunks.push(chunk as Buffer);
    });
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const spec of specs) {
    const data = Buffer.isBuffer(spec.data) ? spec.data : Buffer.from(spec.data ?? '');
    await new Promise<void>((resolve, reject) => {
      const header = { name: spec.name, type: spec.type ?? 'file', linkname: spec.linkname };
      const callback = (err?: Error | null) => (err ? reject(err) : resolve());
      pack.entry(header, spec.type && spec.type !== 'file' ? Buffer.alloc(0) : data, callback);
    });
  }
  pack.finalize();
  await done;
  const tarball = Buffer.concat(chunks);
  return gzip ? gzipSync(tarball) : tarball;
}

/** A fresh folder under the OS temp dir; `cleanup` removes it. */
export async function tempFolder(
  prefix = 'facestyle-datasets-',
): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Every file and folder under `root`, relative, sorted. */
export async function listTree(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true })).map(String).sort();
}

const requireHere = createRequire(import.meta.url);
export const FACE_API_DIR = dirname(requireHere.resolve('@vladmandic/face-api/package.json'));
export const DEMO_PHOTOS = [1, 2, 3, 4, 5, 6].map((i) => join(FACE_API_DIR, 'demo', `sample${i}.jpg`));
