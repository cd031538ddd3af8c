// Compressed torch.save archives: a 2 MB file whose archive/data.pkl inflates to 2 GiB is refused
// from its header (or, when the header lies, within its declared size) without the importer ever
// holding the inflated data; peak memory is measured in a child process. A real archive someone
// re-zipped with compression still imports.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { constants, crc32, deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { CheckpointError } from '../../src/model/checkpoint/io.ts';
import { importWeights } from '../../src/model/import/importer.ts';
import { ZipArchiveReader } from '../../src/model/import/zip.ts';
import { G_STATE_DICT } from './support/weights.ts';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

interface ZipRecord {
  name: string;
  /** The record's data as stored in the archive (raw deflate when `deflated`). */
  body: Buffer;
  deflated: boolean;
  /** Uncompressed size written to both headers. */
  declaredSize: number;
  crc: number;
}

function zipOf(records: ZipRecord[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const record of records) {
    const name = Buffer.from(record.name, 'utf8');
    const method = record.deflated ? 8 : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(record.crc >>> 0, 14);
    local.writeUInt32LE(record.body.length, 18);
    local.writeUInt32LE(record.declaredSize, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(record.crc >>> 0, 16);
    central.writeUInt32LE(record.body.length, 20);
    central.writeUInt32LE(record.declaredSize, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, record.body);
    centrals.push(central, name);
    offset += local.length + name.length + record.body.length;
  }
  const centralBytes = centrals.reduce((sum, b) => sum + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(records.length, 8);
  end.writeUInt16LE(records.length, 10);
  end.writeUInt32LE(centralBytes, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}

/**
 * Raw deflate data inflating to `mebibytes` MiB of zeros, built without deflating them: one
 * sync-flushed (byte-aligned, non-final) compressed MiB repeated, then an empty final block.
 */
function zerosDeflated(mebibytes: number): Buffer {
  const oneMiB = deflateRawSync(Buffer.alloc(MiB), { finishFlush: constants.Z_SYNC_FLUSH });
  const finalBlock = Buffer.from([0x03, 0x00]);
  return Buffer.concat([...Array.from({ length: mebibytes }, () => oneMiB), finalBlock]);
}

function bombArchive(declaredSize: number): Buffer {
  const version = Buffer.from('3\n');
  return zipOf([
    {
      name: 'archive/data.pkl',
      body: zerosDeflated(2048),
      deflated: true,
      declaredSize,
      crc: 0,
    },
    {
      name: 'archive/version',
      body: version,
      deflated: false,
      declaredSize: version.length,
      crc: crc32(version),
    },
  ]);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'facestyle-zipbomb-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the bomb itself', () => {
  it('is about 2 MB and really inflates (checked on its first 8 MiB)', async () => {
    const archive = bombArchive(2 * GiB - 1);
    expect(archive.length).toBeLessThan(3 * MiB);
    const { inflateRawSync } = await import('node:zlib');
    const head = zerosDeflated(8);
    expect(inflateRawSync(head).length).toBe(8 * MiB);
  });
});

/**
 * Runs `facestyle import` on `path` in a child process whose peak resident memory GNU time
 * reports; returns the exit code, what the user read and the peak in bytes.
 */
async function importInChild(path: string): Promise<{ code: number; stderr: string; peakBytes: number }> {
  const cli = join(import.meta.dirname, '../../bin/facestyle.js');
  const args = [
    '-f',
    '%M',
    process.execPath,
    cli,
    '--backend',
    'cpu',
    'import',
    path,
    '--out',
    join(dir, 'out.safetensors'),
  ];
  const result = await promisify(execFile)('/usr/bin/time', args, { timeout: 120_000 }).then(
    ({ stderr }) => ({ code: 0, stderr }),
    (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
  );
  const lines = result.stderr.trim().split('\n');
  const peakKiB = Number(lines.at(-1));
  expect(Number.isFinite(peakKiB)).toBe(true);
  const userLines = lines.slice(0, -1).filter((line) => !/^\d{4}-\d\d-\d\dT[\d:.]+Z /.test(line));
  return { code: result.code, stderr: userLines.join('\n'), peakBytes: peakKiB * 1024 };
}

describe('facestyle import of a zip bomb', () => {
  for (const [what, declared, message] of [
    [
      'an honest header (2 GiB declared)',
      2 * GiB - 1,
      /refusing record archive\/data\.pkl: it declares 2048\.0 MiB/,
    ],
    // yauzl's own size check (validateEntrySizes) stops a lying header, within the declared size.
    [
      'a lying header (64 KiB declared)',
      64 * 1024,
      /record archive\/data\.pkl: too many bytes in the stream/,
    ],
  ] as const) {
    it(`refuses data.pkl inflating to 2 GiB with ${what}, quickly and under 1.2 GB`, async () => {
      const path = join(dir, 'bomb.pt');
      await writeFile(path, bombArchive(declared));
      const started = performance.now();
      const { code, stderr, peakBytes } = await importInChild(path);
      const seconds = (performance.now() - started) / 1000;
      expect(code).toBe(1);
      expect(stderr).toMatch(/^error: .*bomb\.pt: /);
      expect(stderr).toMatch(message);
      expect(stderr).not.toMatch(/\n\s+at /);
      expect(peakBytes).toBeLessThan(1.2e9);
      // Node, tsx and the CLI alone take about 150 MB; the 2 GiB are never held.
      expect(peakBytes).toBeLessThan(600e6);
      expect(seconds).toBeLessThan(30);
      expect(existsSync(join(dir, 'out.safetensors'))).toBe(false);
    }, 150_000);
  }

  it('stops compressed records at the archive inflate budget, each within the ratio limit', async () => {
    // Each record: 1 MiB of noise and 15 MiB of zeros, about 16:1 (within 20:1). Four of them in
    // a 4 MB archive may together inflate to no more than twice the file plus 16 MiB (about 24 MiB).
    const data = Buffer.concat([randomBytes(MiB), Buffer.alloc(15 * MiB)]);
    const body = deflateRawSync(data);
    const path = join(dir, 'many.zip');
    await writeFile(
      path,
      zipOf(
        Array.from({ length: 4 }, (_, i) => ({
          name: `archive/data/${i}`,
          body,
          deflated: true,
          declaredSize: data.length,
          crc: crc32(data),
        })),
      ),
    );
    const zip = await ZipArchiveReader.open(path);
    try {
      expect((await zip.read('archive/data/0')).equals(data)).toBe(true);
      await expect(zip.read('archive/data/1')).rejects.toThrow(/more than this archive may inflate to/);
    } finally {
      await zip.close();
    }
  });

  it('refuses a record over 20:1 from its header alone', async () => {
    const path = join(dir, 'ratio.zip');
    await writeFile(
      path,
      zipOf([
        { name: 'archive/data/0', body: zerosDeflated(16), deflated: true, declaredSize: 16 * MiB, crc: 0 },
      ]),
    );
    const zip = await ZipArchiveReader.open(path);
    try {
      await expect(zip.read('archive/data/0')).rejects.toThrow(CheckpointError);
    } finally {
      await zip.close();
    }
  });
});

describe('stored records sharing their data', () => {
  it('reads the data once, and refuses a second directory record pointing at it', async () => {
    // One 1 MiB stored record with four central-directory records pointing at it: without a
    // budget, each tensor naming one would load the same bytes again (a non-recursive zip bomb).
    const data = randomBytes(MiB);
    const single = zipOf([
      { name: 'archive/data/0', body: data, deflated: false, declaredSize: data.length, crc: crc32(data) },
    ]);
    const centralStart = single.readUInt32LE(single.length - 22 + 16);
    const central = single.subarray(centralStart, single.length - 22);
    const centrals = [0, 1, 2, 3].map((i) => {
      const copy = Buffer.from(central);
      copy.write(String(i), copy.length - 1, 'latin1');
      return copy;
    });
    const end = Buffer.from(single.subarray(single.length - 22));
    end.writeUInt16LE(4, 8);
    end.writeUInt16LE(4, 10);
    end.writeUInt32LE(central.length * 4, 12);
    const path = join(dir, 'shared.zip');
    await writeFile(path, Buffer.concat([single.subarray(0, centralStart), ...centrals, end]));
    const zip = await ZipArchiveReader.open(path);
    try {
      expect([...zip.entries.keys()]).toEqual([
        'archive/data/0',
        'archive/data/1',
        'archive/data/2',
        'archive/data/3',
      ]);
      expect((await zip.read('archive/data/0')).equals(data)).toBe(true);
      await expect(zip.read('archive/data/1')).rejects.toThrow(/records sharing their data/);
    } finally {
      await zip.close();
    }
  });
});

describe('a compressed archive that is real', () => {
  it('imports G_state_dict.pt re-zipped with deflate to the same tensors', async () => {
    await initBackend('cpu');
    const stored = await ZipArchiveReader.open(G_STATE_DICT);
    const records: ZipRecord[] = [];
    try {
      for (const name of stored.entries.keys()) {
        const data = await stored.read(name);
        records.push({
          name,
          body: deflateRawSync(data),
          deflated: true,
          declaredSize: data.length,
          crc: crc32(data),
        });
      }
    } finally {
      await stored.close();
    }
    const path = join(dir, 'deflated.pt');
    await writeFile(path, zipOf(records));
    const fromStored = await importWeights(G_STATE_DICT, { out: join(dir, 'stored.safetensors') });
    const fromDeflated = await importWeights(path, { out: join(dir, 'deflated.safetensors') });
    expect(fromDeflated.format).toBe('torch-zip');
    expect(fromDeflated.config).toEqual(fromStored.config);
    expect(fromDeflated.networks).toEqual(fromStored.networks);
  });
});
