// Reading scores back: which snapshot of a run scored best against its own training set, and how a
// score is written for people. Reads checkpoint metadata only (no TensorFlow.js), so the bot and the
// model registry can use it.
import type { CheckpointMeta, ModelScore } from '../../model/checkpoint/format.ts';
import { readCheckpointInfo } from '../../model/checkpoint/info.ts';

/** The snapshot's score against the images it was trained on (its datasetId), if it was scored. */
export function trainingScore(meta: Pick<CheckpointMeta, 'scores' | 'datasetId'>): ModelScore | undefined {
  if (!meta.scores?.length) return undefined;
  return meta.datasetId === undefined
    ? meta.scores[0]
    : meta.scores.find((score) => score.against === meta.datasetId);
}

/**
 * The best-scored of `snapshots`: the lowest KID among those scored with one metric (the metric
 * most of them use; scores of different feature networks are not comparable). Ties go to the
 * earlier epoch. Undefined when none is scored.
 */
export function bestScored<T extends { epoch?: number; score?: ModelScore }>(snapshots: T[]): T | undefined {
  const scored = snapshots.filter((s) => s.score !== undefined);
  if (!scored.length) return undefined;
  const byMetric = new Map<string, number>();
  for (const s of scored) byMetric.set(s.score!.metric, (byMetric.get(s.score!.metric) ?? 0) + 1);
  const metric = [...byMetric].sort((a, b) => b[1] - a[1])[0][0];
  return scored
    .filter((s) => s.score!.metric === metric)
    .reduce((best, s) =>
      s.score!.kid < best.score!.kid ||
      (s.score!.kid === best.score!.kid && (s.epoch ?? 0) < (best.epoch ?? 0))
        ? s
        : best,
    );
}

export interface SnapshotWithScore {
  epoch: number;
  path: string;
  score?: ModelScore;
}

/** The training-set scores stored in each snapshot file (unreadable files count as unscored). */
export async function readSnapshotScores(
  snapshots: Array<{ epoch: number; path: string }>,
): Promise<SnapshotWithScore[]> {
  return Promise.all(
    snapshots.map(async (s) => {
      const meta = await readCheckpointInfo(s.path)
        .then((info) => info.meta)
        .catch(() => undefined);
      const score = meta && trainingScore(meta);
      return score ? { ...s, score } : { ...s };
    }),
  );
}

/** A KID value with enough digits to compare snapshots (they differ in the second significant one). */
export function formatKid(value: number): string {
  return Math.abs(value) >= 0.001 ? value.toFixed(4) : value.toExponential(1);
}

/** "KID-nsfwMNv2 0.0123 ± 0.0021", the way every message shows a score. */
export function formatScore(score: Pick<ModelScore, 'metric' | 'kid' | 'kidStd'>): string {
  return `${score.metric} ${formatKid(score.kid)} ± ${formatKid(score.kidStd)}`;
}
