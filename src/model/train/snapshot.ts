// Snapshots of a training run: one self-describing checkpoint per snapshot epoch (G, D, G_ema,
// config, parent model, dataset id, epoch, kimg, augment p, losses, and the loop's own state in
// meta.extra.training), written atomically by saveCheckpoint, plus a preview grid of fixed seeds.
// A run resumes from the newest snapshot in its folder.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeUnderLimit } from '../../images/encode.ts';
import { renderGrid } from '../../images/grid.ts';
import { writeImage } from '../../images/index.ts';
import { type RgbImage, tensorToRgb } from '../../images/tensor-image.ts';
import { CheckpointError, type CheckpointMeta } from '../checkpoint/io.ts';
import type { GeneratorConfig } from '../config.ts';
import { Generator } from '../networks/generator.ts';
import type { ParamStore } from '../params.ts';
import { generateFromSeeds } from '../sampling.ts';
import type { AdaptiveAugmentState } from './augment.ts';

const SNAPSHOT_NAME = /^snapshot-epoch(\d+)\.safetensors$/;

export function snapshotPath(outDir: string, epoch: number): string {
  return join(outDir, `snapshot-epoch${String(epoch).padStart(5, '0')}.safetensors`);
}

export function previewPath(outDir: string, epoch: number): string {
  return join(outDir, `preview-epoch${String(epoch).padStart(5, '0')}.png`);
}

export interface SnapshotFile {
  epoch: number;
  path: string;
}

/** The run's snapshots, oldest first (temporary files of an interrupted write are not listed). */
export async function listSnapshots(outDir: string): Promise<SnapshotFile[]> {
  let names: string[];
  try {
    names = await readdir(outDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((name) => ({ match: SNAPSHOT_NAME.exec(name), name }))
    .filter((e) => e.match)
    .map((e) => ({ epoch: Number(e.match![1]), path: join(outDir, e.name) }))
    .sort((a, b) => a.epoch - b.epoch);
}

/** What the loop needs, beyond the networks, to continue from a snapshot. */
export interface TrainingState {
  /** Training images consumed so far (the position in the data stream). */
  imagesSeen: number;
  /** Minibatches taken so far (lazy regularisation and random streams key on it). */
  step: number;
  /** Whole epochs completed. */
  epoch: number;
  /** Path-length running mean. */
  plMean: number;
  /** The ADA controller, when p adapts. */
  ada: AdaptiveAugmentState | null;
  /** The run's seed: data order, latents, noise and augmentations all derive from it. */
  seed: number;
}

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Reads and checks meta.extra.training of a snapshot. */
export function trainingStateOf(meta: CheckpointMeta, source: string): TrainingState {
  const raw = meta.extra?.training as Partial<TrainingState> | undefined;
  const bad = (what: string) =>
    new CheckpointError(
      `${source}: not a resumable training snapshot (${what})`,
      'resume from a snapshot folder',
    );
  if (!raw || typeof raw !== 'object') throw bad('no training state');
  for (const key of ['imagesSeen', 'step', 'epoch', 'plMean', 'seed'] as const) {
    if (!isFiniteNumber(raw[key])) throw bad(`training.${key} missing`);
  }
  const ada = raw.ada ?? null;
  if (ada !== null && !(isFiniteNumber(ada.p) && isFiniteNumber(ada.signSum) && isFiniteNumber(ada.images))) {
    throw bad('training.ada malformed');
  }
  return { ...(raw as TrainingState), ada };
}

/** Renders `seeds` with the generator (const noise, psi 1) as a labelled grid PNG. */
export async function writePreview(
  path: string,
  cfg: GeneratorConfig,
  params: ParamStore,
  seeds: number[],
  title: string,
): Promise<string> {
  const G = new Generator(cfg, params);
  const tiles: RgbImage[] = [];
  await generateFromSeeds(G, seeds, async (images) => {
    tiles.push(...(await tensorToRgb(images)));
  });
  const grid = await renderGrid({
    tiles,
    tileLabels: seeds.map(String),
    title,
    tileSize: Math.max(cfg.resolution, 64),
  });
  return writeImage(path, await encodeUnderLimit(grid));
}
