// Scores the shipped demo models (docs/score.md): every demo-lorelei snapshot, the base and a blend
// of each snapshot at 16 px, against the lorelei training set and against the base's facesjs
// training set, both rendered again exactly as src/demo/data.ts made them for training. Prints a
// Markdown table by epoch. With --write, stores each model's score against its own training set in
// its checkpoint metadata (the weights are rewritten unchanged, F16 as published), so /models and
// /blend see them.
//
//   npx tsx scripts/score-demo-models.ts [--num 256] [--write]
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { renderDemoFace } from '../src/demo/data.ts';
import type { RgbImage } from '../src/images/tensor-image.ts';
import { initBackend } from '../src/model/backend.ts';
import type { ModelScore } from '../src/model/checkpoint/format.ts';
import {
  disposeCheckpoint,
  generatorParams,
  loadCheckpoint,
  saveCheckpoint,
} from '../src/model/checkpoint/io.ts';
import { Generator } from '../src/model/networks/generator.ts';
import { TrainingSet } from '../src/model/train/data.ts';
import { blendCheckpoints } from '../src/pipelines/blend.ts';
import { formatKid } from '../src/pipelines/score/best.ts';
import { decodeImage, pickIndices } from '../src/pipelines/score/sources.ts';
import { StyleMeter, type StylePosition } from '../src/pipelines/score/toward.ts';

const args = process.argv.slice(2);
const num = Number(args[args.indexOf('--num') + 1] || 256);
const write = args.includes('--write');
const RES = 32;
const BLEND_LAYER = 16;

/** A demo training set as training saw it (its content id is the snapshots' datasetId). */
async function trainingSet(
  dataset: 'faces' | 'lorelei',
  count: number,
): Promise<{ images: RgbImage[]; id: string }> {
  const images: RgbImage[] = [];
  for (let seed = 0; seed < count; seed++)
    images.push(await decodeImage(await renderDemoFace(dataset, seed, RES), RES));
  const set = new TrainingSet(Buffer.concat(images.map((i) => i.data)), RES);
  const chosen = pickIndices(count, num, 0).map((i) => images[i]);
  return { images: chosen, id: set.id };
}

function score(position: StylePosition['base'], against: string, metric: string): ModelScore {
  return { metric, against, kid: position.kid, kidStd: position.kidStd, numReal: num, numFake: num, psi: 1 };
}

await initBackend('wasm');
const started = performance.now();
const faces = await trainingSet('faces', 500);
const lorelei = await trainingSet('lorelei', 400);
const meter = await StyleMeter.create(faces.images, lorelei.images, { count: num });
const metric = meter.metric;
const cell = (r: { kid: number; kidStd: number }) => `${formatKid(r.kid)} ± ${formatKid(r.kidStd)}`;

const basePath = 'checkpoints/demo-faces.safetensors';
const base = await loadCheckpoint(basePath);
const baseParams = generatorParams(base);
const rows: string[] = [];
const basePos = await meter.measure(new Generator(base.config.G, baseParams));
rows.push(
  `| base (demo-faces) | ${cell(basePos.style)} | ${cell(basePos.base)} | ${(100 * basePos.toward).toFixed(0)}% | | |`,
);
const snapshots = (await readdir('checkpoints'))
  .filter((f) => /^demo-lorelei-epoch\d+\.safetensors$/.test(f))
  .sort();
const scores: Array<{ path: string; score: ModelScore }> = [];
if (base.meta.datasetId === faces.id)
  scores.push({ path: basePath, score: score(basePos.base, faces.id, metric) });
else
  console.error(
    `demo-faces was trained on ${base.meta.datasetId}, not the rendered set ${faces.id}: not stored`,
  );
for (const file of snapshots) {
  const path = join('checkpoints', file);
  const snap = await loadCheckpoint(path);
  const pos = await meter.measure(new Generator(snap.config.G, generatorParams(snap)));
  const { checkpoint, owned } = blendCheckpoints(
    { path: basePath, config: base.config, meta: base.meta, params: baseParams },
    { path, config: snap.config, meta: snap.meta, params: generatorParams(snap) },
    { layer: BLEND_LAYER },
  );
  const blended = await meter.measure(new Generator(base.config.G, checkpoint.G_ema!));
  for (const t of owned) t.dispose();
  rows.push(
    `| ${snap.meta.epoch} | ${cell(pos.style)} | ${cell(pos.base)} | ${(100 * pos.toward).toFixed(0)}% | ` +
      `${cell(blended.style)} | ${(100 * blended.toward).toFixed(0)}% |`,
  );
  if (snap.meta.datasetId === lorelei.id) scores.push({ path, score: score(pos.style, lorelei.id, metric) });
  else
    console.error(
      `${file} was trained on ${snap.meta.datasetId}, not the rendered set ${lorelei.id}: not stored`,
    );
  disposeCheckpoint(snap);
}
disposeCheckpoint(base);

console.log(
  `${metric}, ${num} generated images (seeds 0-${num - 1}, psi 1) against ${num} of each training set; ` +
    `${((performance.now() - started) / 1000).toFixed(0)} s on wasm\n`,
);
console.log(
  `| epoch | vs lorelei (its training set) | vs facesjs (the base's) | toward lorelei | blend at ${BLEND_LAYER} px: vs lorelei | blend: toward lorelei |`,
);
console.log('| --- | --- | --- | --- | --- | --- |');
for (const row of rows) console.log(row);

if (write) {
  for (const { path, score: s } of scores) {
    const ckpt = await loadCheckpoint(path);
    const others = (ckpt.meta.scores ?? []).filter(
      (o) => !(o.metric === s.metric && o.against === s.against),
    );
    await saveCheckpoint(path, { ...ckpt, meta: { ...ckpt.meta, scores: [...others, s] } }, { dtype: 'F16' });
    disposeCheckpoint(ckpt);
    console.error(`stored ${s.metric} ${formatKid(s.kid)} in ${path}`);
  }
}
