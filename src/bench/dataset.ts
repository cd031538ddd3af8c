// `npm run bench -- dataset`: dataset ingest throughput (source images per second) for a tar.gz
// upload: centre mode on synthetic pictures, faces mode on variants of face-api's demo photos.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Command } from 'commander';
import sharp from 'sharp';
import tar from 'tar-stream';
import { type AlignMode, buildDataset, type DatasetReport } from '../datasets/index.ts';
import { machineDescription, markdownTable, today } from './common.ts';

export interface DatasetBenchOptions {
  count: string;
  facesCount: string;
  res: string;
}

async function tarGz(files: Array<{ name: string; data: Buffer }>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const ended = new Promise<void>((resolve, reject) => {
    pack.on('data', (chunk) => {
      chunks.push(chunk as Buffer);
    });
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const { name, data } of files) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name }, data, (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await ended;
  return gzipSync(Buffer.concat(chunks));
}

/** Distinct 640x480 JPEGs: smooth random colour fields, like drawn art more than noise. */
async function syntheticPictures(count: number): Promise<Array<{ name: string; data: Buffer }>> {
  const files = [];
  for (let i = 0; i < count; i++) {
    const cells = Buffer.alloc(6 * 8 * 3);
    let state = (i + 1) * 2654435761;
    for (let k = 0; k < cells.length; k++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      cells[k] = state >>> 24;
    }
    const data = await sharp(cells, { raw: { width: 8, height: 6, channels: 3 } })
      .resize(640, 480, { kernel: 'cubic' })
      .jpeg({ quality: 90 })
      .toBuffer();
    files.push({ name: `art/${String(i).padStart(4, '0')}.jpg`, data });
  }
  return files;
}

/** The six demo group photos, cropped and mirrored differently each time, as 1920 px JPEGs. */
async function photoVariants(count: number): Promise<Array<{ name: string; data: Buffer }>> {
  const requireHere = createRequire(import.meta.url);
  const demo = join(dirname(requireHere.resolve('@vladmandic/face-api/package.json')), 'demo');
  const photos = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => readFile(join(demo, `sample${i}.jpg`))));
  const files = [];
  for (let i = 0; i < count; i++) {
    const photo = sharp(photos[i % photos.length]);
    const { width = 0, height = 0 } = await photo.metadata();
    const margin = (i * 7) % 60;
    let variant = sharp(photos[i % photos.length]).extract({
      left: margin,
      top: margin,
      width: width - 2 * margin,
      height: height - 2 * margin,
    });
    if (Math.floor(i / photos.length) % 2 === 1) variant = variant.flop();
    files.push({
      name: `photos/${String(i).padStart(4, '0')}.jpg`,
      data: await variant.jpeg({ quality: 90 }).toBuffer(),
    });
  }
  return files;
}

async function timeBuild(
  dir: string,
  name: string,
  files: Array<{ name: string; data: Buffer }>,
  align: AlignMode,
  resolution: number,
): Promise<DatasetReport> {
  const input = join(dir, `${name}.tar.gz`);
  await writeFile(input, await tarGz(files));
  process.stderr.write(`${name}: ${files.length} images, building...\n`);
  return buildDataset({
    input,
    outDir: join(dir, name),
    resolution,
    align,
    minImages: 0,
    multipleFaces: 'largest',
    onProgress: (p) => {
      if (p.done % 50 === 0) process.stderr.write(`  ${p.done}/${files.length}\n`);
    },
  });
}

export async function benchDataset(opts: DatasetBenchOptions): Promise<string> {
  const resolution = Number(opts.res);
  const dir = await mkdtemp(join(tmpdir(), 'facestyle-bench-dataset-'));
  const rows: Array<Array<string | number>> = [];
  const row = (mode: string, report: DatasetReport) => {
    const peakRss = Math.round(process.resourceUsage().maxRSS / 1024);
    const { kept, duplicate } = report.counts;
    rows.push([
      today(),
      mode,
      report.sources,
      resolution,
      report.seconds.toFixed(1),
      report.entriesPerSecond.toFixed(2),
      `${kept} kept, ${duplicate} duplicates`,
      peakRss,
    ]);
    process.stderr.write(`${mode}: ${report.entriesPerSecond.toFixed(2)} images/s\n`);
  };
  try {
    const count = Number(opts.count);
    if (count > 0)
      row(
        'center, synthetic 640x480 JPEG',
        await timeBuild(dir, 'center', await syntheticPictures(count), 'center', resolution),
      );
    const facesCount = Number(opts.facesCount);
    if (facesCount > 0)
      row(
        'faces, demo photos ~1900x1300 JPEG',
        await timeBuild(dir, 'faces', await photoVariants(facesCount), 'faces', resolution),
      );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const table = markdownTable(
    ['date', 'mode, input', 'images', 'resolution', 'seconds', 'images/s', 'outcome', 'peak RSS MiB'],
    rows,
  );
  return `Machine: ${machineDescription()} (face detection on tfjs wasm, 1 thread)\n\n${table}\n`;
}

export function register(bench: Command): void {
  bench
    .command('dataset')
    .description('dataset ingest speed: images/s from a tar.gz upload, centre and faces mode')
    .option('--count <n>', 'synthetic images for centre mode (0: skip)', '500')
    .option('--faces-count <n>', 'photos for faces mode (0: skip)', '500')
    .option('--res <px>', 'output resolution', '256')
    .action(async (opts: DatasetBenchOptions) => {
      process.stdout.write(await benchDataset(opts));
    });
}
