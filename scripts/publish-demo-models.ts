// Copies trained demo runs into checkpoints/ in F16: the base with G_ema, G and D (so users can
// fine-tune from it), the style's ladder snapshots with G_ema only (enough to generate and blend),
// under the names the offline demo and the bot look for: demo-faces, and demo-<style> by epoch.
//
//   node --import tsx scripts/publish-demo-models.ts BASE_SNAPSHOT STYLE_RUN_DIR \
//     [--epochs 6,12,18,40,120] [--style demo-lorelei] [--out checkpoints] \
//     [--recipe demo64,faces=10000,seed=0,target=10] [--continues START_CHECKPOINT] \
//     [--base-data DIR --style-data DIR [--score-samples 256]]
//
// --recipe records the base's progress through the recipe in meta.extra.recipe (epochs and kimg
// from scratch, the target, each run's share), which train-demo-models.sh reads to continue an
// interim release on a machine without runs/; --continues names the interim release that the base
// run started from, whose totals this run adds to.
//
// With --base-data and --style-data every published model is scored against its own training set
// with the same number of images (a fine-tune's own snapshot scores are cut to a tenth of an
// epoch's time, which for 800-image style epochs is few images), exactly as a fine-tune scores a
// snapshot; the score replaces meta.scores, so /models and "the best-scored epoch" compare alike.
//
// Weights are published as trained, noise inputs included: the first 32x32 models had their
// noise_strength zeroed here because G had turned the noise into speckle; the 64x64 recipe keeps
// them working (docs/demo-models.md). Snapshots of the style run that are not on --epochs are
// resume points, not published. Earlier demo-<style>-epoch* files in --out are replaced.
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/model/backend.ts';
import type { Checkpoint, ModelScore } from '../src/model/checkpoint/format.ts';
import { readCheckpointInfo } from '../src/model/checkpoint/info.ts';
import {
  type CheckpointMeta,
  disposeCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
} from '../src/model/checkpoint/io.ts';
import { Generator } from '../src/model/networks/generator.ts';
import { TrainingSet } from '../src/model/train/data.ts';
import { TrainingSetScorer } from '../src/pipelines/score/training.ts';

const BASE = 'demo-faces';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    epochs: { type: 'string' },
    style: { type: 'string', default: 'demo-lorelei' },
    out: { type: 'string', default: 'checkpoints' },
    recipe: { type: 'string' },
    continues: { type: 'string' },
    'base-data': { type: 'string' },
    'style-data': { type: 'string' },
    'score-samples': { type: 'string', default: '256' },
  },
});
const [basePath, styleRun] = positionals;
if (!basePath || !styleRun) {
  console.error(
    'usage: publish-demo-models.ts BASE_SNAPSHOT STYLE_RUN_DIR [--epochs LIST] [--style NAME] [--out DIR]',
  );
  process.exit(2);
}
const style = values.style!;
const outDir = values.out!;
const ladder = values.epochs ? new Set(values.epochs.split(',').map(Number)) : null;

function published(meta: CheckpointMeta, name: string, kind: CheckpointMeta['kind']): CheckpointMeta {
  return { ...meta, name, kind, extra: { ...meta.extra, publishedWith: 'as trained, F16' } };
}

const SNAPSHOT = /^snapshot-epoch(\d+)\.safetensors$/;
const snapshots = (await readdir(styleRun))
  .map((f) => ({ file: f, epoch: Number(SNAPSHOT.exec(f)?.[1] ?? Number.NaN) }))
  .filter((s) => Number.isFinite(s.epoch) && (!ladder || ladder.has(s.epoch)))
  .sort((a, b) => a.epoch - b.epoch);
if (ladder && snapshots.length !== ladder.size) {
  const missing = [...ladder].filter((e) => !snapshots.some((s) => s.epoch === e));
  console.error(
    `${styleRun} has no snapshot of epoch ${missing.join(', ')}: train the style to the end first`,
  );
  process.exit(1);
}

if ((values['base-data'] === undefined) !== (values['style-data'] === undefined)) {
  console.error('--base-data and --style-data go together: each model is scored against its own set');
  process.exit(2);
}
const scoreSamples = Number(values['score-samples']);
const scorers = new Map<string, TrainingSetScorer>();
/** The checkpoint's G_ema against the training images in `dir`, as a fine-tune scores a snapshot. */
async function scoreAgainst(ckpt: Checkpoint, dir: string | undefined): Promise<ModelScore[] | undefined> {
  if (dir === undefined) return ckpt.meta.scores;
  let scorer = scorers.get(dir);
  if (!scorer) {
    const data = await TrainingSet.fromFolder(dir, ckpt.config.G.resolution);
    scorer = new TrainingSetScorer(data, { samples: scoreSamples, budget: Number.POSITIVE_INFINITY });
    scorers.set(dir, scorer);
  }
  const outcome = await scorer.score(new Generator(ckpt.config.G, ckpt.G_ema!), 1);
  if (!outcome.score) throw new Error(`${ckpt.path} was not scored: ${outcome.skipped}`);
  console.log(
    `  ${outcome.score.metric} ${outcome.score.kid.toFixed(4)} ± ${outcome.score.kidStd.toFixed(4)}`,
  );
  return [outcome.score];
}

// Scoring renders hundreds of images: wasm, as training (the cpu backend would take an hour).
await initBackend(values['base-data'] === undefined ? 'cpu' : 'wasm');
await mkdir(outDir, { recursive: true });
/** The recipe's progress, stored in meta.extra.recipe of a published base. */
interface RecipeProgress {
  name: string;
  faces: number;
  seed: number;
  targetEpochs: number;
  /** Base epochs and kimg from scratch, over every run. */
  epochs: number;
  kimg: number;
  interim: boolean;
  runs: { epochs: number; kimg: number; finishedAt: string | undefined }[];
}

/** `demo64,faces=10000,seed=0,target=10` -> the fields of RecipeProgress it names. */
function parseRecipe(text: string): Pick<RecipeProgress, 'name' | 'faces' | 'seed' | 'targetEpochs'> {
  const [name, ...pairs] = text.split(',');
  const fields = Object.fromEntries(pairs.map((p) => p.split('=')).map(([k, v]) => [k, Number(v)]));
  for (const key of ['faces', 'seed', 'target']) {
    if (!Number.isInteger(fields[key])) {
      console.error(`--recipe ${text}: ${key}=N missing (e.g. demo64,faces=10000,seed=0,target=10)`);
      process.exit(2);
    }
  }
  return { name, faces: fields.faces, seed: fields.seed, targetEpochs: fields.target };
}

const base = await loadCheckpoint(basePath);
let baseMeta = published(base.meta, BASE, 'demo');
if (values.recipe) {
  const before = values.continues
    ? ((await readCheckpointInfo(values.continues)).meta.extra?.recipe as RecipeProgress | undefined)
    : undefined;
  if (values.continues && !before) {
    console.error(`${values.continues} has no recipe progress: it is not an interim release`);
    process.exit(1);
  }
  const run = { epochs: base.meta.epoch ?? 0, kimg: base.meta.kimg ?? 0, finishedAt: base.meta.createdAt };
  const recipe: RecipeProgress = {
    ...parseRecipe(values.recipe),
    epochs: (before?.epochs ?? 0) + run.epochs,
    kimg: (before?.kimg ?? 0) + run.kimg,
    interim: false,
    runs: [...(before?.runs ?? []), run],
  };
  recipe.interim = recipe.epochs < recipe.targetEpochs;
  // From scratch over all its runs: no parent, and epoch and kimg count from the first.
  const { parent: _continued, ...rest } = baseMeta;
  baseMeta = { ...rest, epoch: recipe.epochs, kimg: recipe.kimg, extra: { ...rest.extra, recipe } };
}
const baseScores = await scoreAgainst(base, values['base-data']);
if (baseScores) baseMeta = { ...baseMeta, scores: baseScores };
await saveCheckpoint(join(outDir, `${BASE}.safetensors`), { ...base, meta: baseMeta }, { dtype: 'F16' });
console.log(`${join(outDir, BASE)}.safetensors (epoch ${baseMeta.epoch}, ${baseMeta.kimg} kimg)`);
disposeCheckpoint(base);

for (const stale of (await readdir(outDir)).filter((f) => f.startsWith(`${style}-epoch`))) {
  await rm(join(outDir, stale));
}
const width = String(snapshots.at(-1)?.epoch ?? 0).length;
for (const { file, epoch } of snapshots) {
  const snap = await loadCheckpoint(join(styleRun, file), { networks: ['G_ema'] });
  const out = join(outDir, `${style}-epoch${String(epoch).padStart(Math.max(2, width), '0')}.safetensors`);
  await saveCheckpoint(
    out,
    {
      config: { G: snap.config.G },
      meta: {
        ...published(snap.meta, style, snap.meta.kind),
        parent: BASE,
        scores: await scoreAgainst(snap, values['style-data']),
      },
      G_ema: snap.G_ema,
    },
    { dtype: 'F16' },
  );
  console.log(out);
  disposeCheckpoint(snap);
}
