// `npm run bench -- dataset`: dataset ingest throughput (source images per second) for a tar.gz
// upload: centre mode on synthetic pictures, faces mode on variants of face-api's demo photos.
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { Command } from 'commander';
import sharp from 'sharp';
import tar from 'tar-stream';
import { parseNumber, positiveInt } from '../cli/options.ts';
import { type AlignMode, buildDataset, type DatasetReport } from '../datasets/index.ts';
import { machineDescription, markdownTable, today } from './common.ts';

export interface DatasetBenchOptions {
  count: string;
  facesCount: string;
  res: string;
}

type FileMaker = (index: number) => Promise<{ name: string; data: Buffer }>;

/** Streams `count` generated files into a .tar.gz, one at a time, so the upload never sits in memory. */
async function writeTarGz(path: string, count: number, makeFile: FileMaker): Promise<void> {
  const pack = tar.pack();
  const written = pipeline(pack as unknown as Readable, createGzip(), createWriteStream(path));
  for (let i = 0; i < count; i++) {
    const { name, data } = await makeFile(i);
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name }, data, (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await written;
}

/** Distinct 640x480 JPEGs: smooth random colour fields, like drawn art more than noise. */
const syntheticPicture: FileMaker = async (index) => {
  const cells = Buffer.alloc(6 * 8 * 3);
  let state = (index + 1) * 2654435761;
  for (let k = 0; k < cells.length; k++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    cells[k] = state >>> 24;
  }
  const data = await sharp(cells, { raw: { width: 8, height: 6, channels: 3 } })
    .resize(640, 480, { kernel: 'cubic' })
    .jpeg({ quality: 90 })
    .toBuffer();
  return { name: `art/${String(index).padStart(4, '0')}.jpg`, data };
};

/** The six demo group photos, cropped and mirrored differently each time, as ~1900 px JPEGs. */
async function photoVariantMaker(): Promise<FileMaker> {
  const requireHere = createRequire(import.meta.url);
  const demo = join(dirname(requireHere.resolve('@vladmandic/face-api/package.json')), 'demo');
  const photos = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => readFile(join(demo, `sample${i}.jpg`))));
  return async (index) => {
    const photo = photos[index % photos.length];
    const { width = 0, height = 0 } = await sharp(photo).metadata();
    const margin = (index * 7) % 60;
    let variant = sharp(photo).extract({
      left: margin,
      top: margin,
      width: width - 2 * margin,
      height: height - 2 * margin,
    });
    if (Math.floor(index / photos.length) % 2 === 1) variant = variant.flop();
    return {
      name: `photos/${String(index).padStart(4, '0')}.jpg`,
      data: await variant.jpeg({ quality: 90 }).toBuffer(),
    };
  };
}

interface TimedBuild {
  report: DatasetReport;
  /** Largest resident set size seen while the build ran (sampled every 50 ms), MiB. */
  peakRssMiB: number;
}

async function timeBuild(
  dir: string,
  name: string,
  count: number,
  makeFile: FileMaker,
  align: AlignMode,
  resolution: number,
): Promise<TimedBuild> {
  const input = join(dir, `${name}.tar.gz`);
  await writeTarGz(input, count, makeFile);
  process.stderr.write(`${name}: ${count} images, building...\n`);
  let peak = 0;
  const sample = () => {
    peak = Math.max(peak, process.memoryUsage().rss);
  };
  const sampler = setInterval(sample, 50);
  try {
    const report = await buildDataset({
      input,
      outDir: join(dir, name),
      resolution,
      align,
      minImages: 0,
      multipleFaces: 'largest',
      onProgress: (p) => {
        sample();
        if (p.done % 50 === 0) process.stderr.write(`  ${p.done}/${count}\n`);
      },
    });
    return { report, peakRssMiB: Math.round(peak / 2 ** 20) };
  } finally {
    clearInterval(sampler);
  }
}

export async function benchDataset(opts: DatasetBenchOptions): Promise<string> {
  const resolution = positiveInt('--res', opts.res);
  const dir = await mkdtemp(join(tmpdir(), 'facestyle-bench-dataset-'));
  const rows: Array<Array<string | number>> = [];
  const row = (mode: string, { report, peakRssMiB }: TimedBuild) => {
    const { kept, duplicate } = report.counts;
    const rate = report.entriesPerSecond.toFixed(2);
    const outcome = `${kept} kept, ${duplicate} duplicates`;
    rows.push([
      today(),
      mode,
      report.sources,
      resolution,
      report.seconds.toFixed(1),
      rate,
      outcome,
      peakRssMiB,
    ]);
    process.stderr.write(`${mode}: ${rate} images/s\n`);
  };
  try {
    const count = parseNumber('--count', opts.count, { integer: true });
    if (count > 0) {
      const build = await timeBuild(dir, 'center', count, syntheticPicture, 'center', resolution);
      row('center, synthetic 640x480 JPEG', build);
    }
    const facesCount = parseNumber('--faces-count', opts.facesCount, { integer: true });
    if (facesCount > 0) {
      const build = await timeBuild(dir, 'faces', facesCount, await photoVariantMaker(), 'faces', resolution);
      row('faces, demo photos ~1900x1300 JPEG', build);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const table = markdownTable(
    [
      'date',
      'mode, input',
      'images',
      'resolution',
      'seconds',
      'images/s',
      'outcome',
      'peak RSS MiB (during build)',
    ],
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
