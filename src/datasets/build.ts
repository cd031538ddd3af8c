// buildDataset: input (archive or folder) -> dataset folder with numbered PNGs, manifest, stats and
// contact sheet. The folder is assembled under a hidden temporary name next to it and renamed into
// place when complete and accepted, so a crash, a full disk, a refused archive or too few usable
// images leave nothing behind (the name stays free for a retry), and an existing dataset folder
// is always a finished one (which is what makes reuse safe).

import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { logger } from '../log.ts';
import { plural } from '../text.ts';
import { writeContactSheet } from './contact-sheet.ts';
import {
  confirmationThumb,
  type DHash,
  DUPLICATE_MAX_MEAN_DIFFERENCE,
  dHash,
  dHashHex,
  hammingDistance,
  meanDifference,
} from './dhash.ts';
import { displayName } from './entry-path.ts';
import { DatasetError } from './errors.ts';
import { rawInput } from './image.ts';
import { openInput } from './input.ts';
import { datasetKey, inputFingerprint } from './key.ts';
import { type ArchiveLimits, resolveLimits } from './limits.ts';
import { type PrepareOptions, prepareImage } from './prepare.ts';
import {
  ALIGN_MODES,
  type BuildDatasetOptions,
  type DatasetReport,
  type DatasetStats,
  ENTRY_STATUSES,
  type ManifestEntry,
  type MultipleFacesPolicy,
  type StatusCounts,
} from './types.ts';

export const MANIFEST_FILE = 'manifest.json';
export const STATS_FILE = 'stats.json';
export const CONTACT_SHEET_FILE = 'contact-sheet.png';
export const IMAGES_DIR = 'images';

const log = logger('datasets');

interface Settings extends PrepareOptions {
  minImages: number;
  duplicateDistance: number;
}

interface Manifest {
  version: 1;
  key: string;
  input: { name: string; format: string; fingerprint: string };
  options: Record<string, unknown>;
  entries: ManifestEntry[];
}

export async function buildDataset(options: BuildDatasetOptions): Promise<DatasetReport> {
  const settings = resolveSettings(options);
  const input = resolve(options.input);
  const outDir = resolve(options.outDir);
  if (!(await stat(input).catch(() => null))) throw new DatasetError(`input not found: ${options.input}`);
  const fingerprint = await inputFingerprint(input);
  const outputOptions = keyedOptions(settings);
  const key = datasetKey(fingerprint, outputOptions);

  const existing = await readExistingDataset(outDir, key);
  if (existing) {
    log.info('dataset reused', { outDir, key: key.slice(0, 12), kept: existing.kept });
    return requireEnoughImages(existing, settings.minImages);
  }

  const parent = dirname(outDir);
  let work: string;
  try {
    await mkdir(parent, { recursive: true });
    work = await mkdtemp(join(parent, `.${basename(outDir)}.partial-`));
  } catch (err) {
    throw diskError(err, parent) ?? err;
  }
  let report: DatasetReport;
  try {
    report = await buildInto(work, outDir, {
      input,
      fingerprint,
      key,
      settings,
      outputOptions,
      onProgress: options.onProgress,
    });
    // Refused before it is published: a name stays free for a retry with more images.
    requireEnoughImages(report, settings.minImages);
    await rename(work, outDir);
  } catch (err) {
    await rm(work, { recursive: true, force: true });
    throw diskError(err, parent) ?? err;
  }
  log.info('dataset built', { outDir, key: key.slice(0, 12), kept: report.kept, seconds: report.seconds });
  return report;
}

const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT']);
const NOT_WRITABLE_CODES = new Set(['EROFS', 'EACCES', 'EPERM']);

/**
 * A write that failed for lack of space or permission, as a DatasetError saying so (sharp reports
 * a full disk in its message only, without an errno code); undefined for any other error.
 */
export function diskError(err: unknown, folder: string): DatasetError | undefined {
  if (err instanceof DatasetError) return undefined;
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const message = err instanceof Error ? err.message : '';
  if (DISK_FULL_CODES.has(code) || /no space left on device|disk quota exceeded/i.test(message))
    return new DatasetError(
      `the disk holding ${folder} is full: the dataset could not be written, and nothing of it was kept`,
      'free some space (or choose another output folder) and run it again',
    );
  if (NOT_WRITABLE_CODES.has(code) || /read-only file system/i.test(message))
    return new DatasetError(
      `cannot write to ${folder} (${code || 'read-only file system'}): nothing was written`,
      'choose an output folder you can write to',
    );
  return undefined;
}

interface BuildContext {
  input: string;
  fingerprint: string;
  key: string;
  settings: Settings;
  outputOptions: Record<string, unknown>;
  onProgress: BuildDatasetOptions['onProgress'];
}

async function buildInto(work: string, outDir: string, context: BuildContext): Promise<DatasetReport> {
  const { settings } = context;
  const startedAt = new Date();
  await mkdir(join(work, IMAGES_DIR));
  const source = await openInput(context.input, settings.limits);
  const entries: ManifestEntry[] = [];
  const kept: Array<{ hash: DHash; thumb: Uint8Array; file: string; centred: boolean }> = [];
  let sources = 0;

  for await (const item of source.items()) {
    sources++;
    const name = displayName(item.name);
    const results: ManifestEntry[] = [];
    if (item.kind === 'skipped') {
      results.push({ source: name, status: item.status, reason: item.reason });
    } else {
      for (const prepared of await prepareImage(item.data, settings)) {
        if (prepared.status !== 'candidate') {
          const { status, reason, face, sourceSize } = prepared;
          results.push({ source: name, status, reason, face, sourceSize });
          continue;
        }
        const hash = await dHash(prepared.image);
        const entry: ManifestEntry = {
          source: name,
          status: 'kept',
          face: prepared.face,
          transform: prepared.transform,
          hash: dHashHex(hash),
          sourceSize: prepared.sourceSize,
        };
        const thumb = await confirmationThumb(prepared.image);
        // The hash finds candidates cheaply; the thumbnails confirm them (see dhash.ts).
        const original = kept.find(
          (k) =>
            hammingDistance(k.hash, hash) <= settings.duplicateDistance &&
            meanDifference(k.thumb, thumb) <= DUPLICATE_MAX_MEAN_DIFFERENCE,
        );
        if (original) {
          results.push({
            ...entry,
            status: 'duplicate',
            reason: `looks like ${original.file}`,
            duplicateOf: original.file,
          });
          continue;
        }
        entry.file = `${IMAGES_DIR}/${String(kept.length).padStart(6, '0')}.png`;
        await rawInput(prepared.image).png().toFile(join(work, entry.file));
        kept.push({ hash, thumb, file: entry.file, centred: prepared.transform.kind === 'center' });
        results.push(entry);
      }
    }
    for (const result of results) entries.push(result);
    context.onProgress?.({
      done: sources,
      total: source.total,
      kept: kept.length,
      entry: name,
      status: results.some((r) => r.status === 'kept') ? 'kept' : results[0].status,
    });
  }
  if (sources === 0) {
    throw new DatasetError(
      'the input holds no files',
      'upload a zip or tar.gz of JPEG, PNG, WebP or GIF images',
    );
  }

  const centred = kept.filter((k) => k.centred).length;
  // Centre-cropped thumbnails are marked only when the sheet mixes both kinds (auto alignment).
  const mixed = centred > 0 && centred < kept.length;
  const contactSheetImages = await writeContactSheet(
    kept.map((k) => join(work, k.file)),
    join(work, CONTACT_SHEET_FILE),
    mixed ? kept.map((k) => k.centred) : undefined,
  );
  const finishedAt = new Date();
  const seconds = (finishedAt.getTime() - startedAt.getTime()) / 1000;
  const stats: DatasetStats = {
    key: context.key,
    resolution: settings.resolution,
    align: settings.align,
    multipleFaces: settings.multipleFaces,
    sources,
    kept: kept.length,
    counts: countStatuses(entries),
    contactSheetImages,
    keptBy: { faces: kept.length - centred, center: centred },
    seconds: Math.round(seconds * 1000) / 1000,
    entriesPerSecond: Math.round((sources / Math.max(seconds, 1e-3)) * 100) / 100,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
  };
  const manifest: Manifest = {
    version: 1,
    key: context.key,
    input: { name: basename(context.input), format: source.format, fingerprint: context.fingerprint },
    options: context.outputOptions,
    entries,
  };
  await writeFile(join(work, MANIFEST_FILE), `${JSON.stringify(manifest, null, 1)}\n`);
  await writeFile(join(work, STATS_FILE), `${JSON.stringify(stats, null, 2)}\n`);
  return reportFor(outDir, stats, entries, false);
}

function reportFor(
  outDir: string,
  stats: DatasetStats,
  entries: ManifestEntry[],
  reused: boolean,
): DatasetReport {
  return {
    ...stats,
    outDir,
    reused,
    entries,
    contactSheet: stats.contactSheetImages > 0 ? join(outDir, CONTACT_SHEET_FILE) : null,
    manifestPath: join(outDir, MANIFEST_FILE),
    statsPath: join(outDir, STATS_FILE),
  };
}

export function countStatuses(entries: ManifestEntry[]): StatusCounts {
  const counts = Object.fromEntries(ENTRY_STATUSES.map((s) => [s, 0])) as StatusCounts;
  for (const entry of entries) counts[entry.status]++;
  return counts;
}

async function readExistingDataset(outDir: string, key: string): Promise<DatasetReport | null> {
  if (!(await stat(outDir).catch(() => null))) return null;
  let manifest: Manifest;
  let stats: DatasetStats;
  try {
    manifest = JSON.parse(await readFile(join(outDir, MANIFEST_FILE), 'utf8')) as Manifest;
    stats = JSON.parse(await readFile(join(outDir, STATS_FILE), 'utf8')) as DatasetStats;
  } catch {
    throw new DatasetError(`${outDir} already exists and is not a dataset`, 'choose another output folder');
  }
  if (manifest.key !== key) {
    throw new DatasetError(
      `${outDir} already holds a dataset built from another input or with other options`,
      'choose another output folder, or delete this one to rebuild it',
    );
  }
  return reportFor(outDir, stats, manifest.entries, true);
}

function requireEnoughImages(report: DatasetReport, minImages: number): DatasetReport {
  if (report.kept >= minImages) return report;
  const reasons = Object.entries(report.counts)
    .filter(([status, n]) => status !== 'kept' && n > 0)
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
  throw new DatasetError(
    `only ${plural(report.kept, 'usable image')}, at least ${minImages} needed${reasons ? ` (${reasons})` : ''}`,
    report.reused
      ? `add more images; ${basename(report.manifestPath)} in the dataset folder says why each file was not used`
      : 'add more images; nothing was kept, so the same name can be used again',
    // A refused build is not published: its counts and reasons, but no contact sheet to show.
    report.reused ? report : { ...report, contactSheet: null, published: false },
  );
}

const MULTIPLE_FACES: readonly MultipleFacesPolicy[] = ['largest', 'all', 'skip'];

function resolveSettings(options: BuildDatasetOptions): Settings {
  const { resolution } = options;
  if (
    !Number.isInteger(resolution) ||
    resolution < 8 ||
    resolution > 1024 ||
    (resolution & (resolution - 1)) !== 0
  ) {
    throw new DatasetError(`resolution must be a power of two from 8 to 1024, got ${resolution}`);
  }
  if (!ALIGN_MODES.includes(options.align)) {
    throw new DatasetError(`align must be one of ${ALIGN_MODES.join(', ')}, got ${options.align}`);
  }
  const multipleFaces = options.multipleFaces ?? 'largest';
  if (!MULTIPLE_FACES.includes(multipleFaces)) {
    throw new DatasetError(`multipleFaces must be one of ${MULTIPLE_FACES.join(', ')}, got ${multipleFaces}`);
  }
  const minImages = options.minImages ?? 1;
  if (!Number.isInteger(minImages) || minImages < 0) {
    throw new DatasetError(`minImages must be a whole number, got ${minImages}`);
  }
  const minFaceSize = options.minFaceSize ?? 0.5;
  if (!(minFaceSize > 0)) throw new DatasetError(`minFaceSize must be positive, got ${minFaceSize}`);
  const duplicateDistance = options.duplicateDistance ?? 6;
  if (!Number.isInteger(duplicateDistance) || duplicateDistance < -1 || duplicateDistance > 64) {
    throw new DatasetError(
      `duplicateDistance must be a whole number from -1 (off) to 64, got ${duplicateDistance}`,
    );
  }
  const minFaceScore = options.minFaceScore ?? 0.5;
  if (!(minFaceScore > 0 && minFaceScore < 1)) {
    throw new DatasetError(`minFaceScore must be between 0 and 1, got ${minFaceScore}`);
  }
  const limits: ArchiveLimits = resolveLimits(options.limits);
  return {
    resolution,
    align: options.align,
    multipleFaces,
    minFaceSize,
    minFaceScore,
    duplicateDistance,
    minImages,
    limits,
  };
}

/** Everything that changes the output; minImages only decides whether to refuse it. */
function keyedOptions({ minImages: _, ...rest }: Settings): Record<string, unknown> {
  return { ...rest, limits: { ...rest.limits } } as Record<string, unknown>;
}
