// `facestyle blend`/`grid` given a fine-tune's run folder instead of one snapshot file: the
// best-scored snapshot in it (lowest KID against its training images), else the newest, with a
// sentence saying which was taken and why.
import { stat } from 'node:fs/promises';
import { UserError } from '../../errors.ts';
import { listSnapshots } from '../../model/train/snapshot.ts';
import { bestScored, formatScore, readSnapshotScores, type SnapshotWithScore } from './best.ts';

export interface PickedSnapshot {
  path: string;
  epoch?: number;
  /** Why this file, when it was not named directly. */
  note?: string;
}

/** The snapshots of a run folder with their scores, oldest first. */
export async function runSnapshots(dir: string): Promise<SnapshotWithScore[]> {
  const snapshots = await listSnapshots(dir);
  if (!snapshots.length)
    throw new UserError(
      `${dir} holds no snapshot-epochNNNNN.safetensors files`,
      'give a checkpoint file or a fine-tune run folder',
    );
  return readSnapshotScores(snapshots);
}

/** `path` itself when it is a file; for a run folder, its best-scored (else newest) snapshot. */
export async function pickSnapshot(path: string): Promise<PickedSnapshot> {
  const info = await stat(path).catch(() => null);
  if (!info?.isDirectory()) return { path };
  const snapshots = await runSnapshots(path);
  const best = bestScored(snapshots);
  if (best?.score) {
    return {
      path: best.path,
      epoch: best.epoch,
      note: `epoch ${best.epoch} of ${path}: the best-scored snapshot (${formatScore(best.score)} against its training images, lower is better)`,
    };
  }
  const newest = snapshots.at(-1)!;
  return {
    path: newest.path,
    epoch: newest.epoch,
    note: `epoch ${newest.epoch} of ${path}: the newest snapshot (none is scored)`,
  };
}
