// Scores demo models against their own training sets in one process, one after the other (the
// old-vs-new comparison of docs/demo-models.md is only fair within one run), and prints a
// Markdown table: KID-nsfwMNv2 with its spread, and sample diversity against the set's.
//
//   node --import tsx scripts/score-demo-models.ts [--num 500] [--backend wasm] \
//     LABEL=CHECKPOINT:IMAGE_DIR [LABEL=CHECKPOINT:IMAGE_DIR ...]
import { parseArgs } from 'node:util';
import { initBackend } from '../src/model/backend.ts';
import { readCheckpointInfo } from '../src/model/checkpoint/info.ts';
import type { FeatureMatrix } from '../src/pipelines/score/kid.ts';
import { scoreSources } from '../src/pipelines/score/score.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    num: { type: 'string', default: '500' },
    backend: { type: 'string', default: 'wasm' },
  },
});
const jobs = positionals.map((arg) => {
  const match = /^([^=]+)=([^:]+):(.+)$/.exec(arg);
  if (!match) {
    console.error(`expected LABEL=CHECKPOINT:IMAGE_DIR, got "${arg}"`);
    process.exit(2);
  }
  return { label: match[1], checkpoint: match[2], images: match[3] };
});
if (jobs.length === 0) {
  console.error('usage: score-demo-models.ts [--num N] LABEL=CHECKPOINT:IMAGE_DIR ...');
  process.exit(2);
}
const num = Number(values.num);
await initBackend(values.backend!);
const started = new Date().toISOString();
const rows: string[] = [];
// Several models against one set (a style's snapshots) featurise the set once.
const realFeatureCache = new Map<string, FeatureMatrix>();
for (const job of jobs) {
  const info = await readCheckpointInfo(job.checkpoint);
  process.stderr.write(`${job.label}: ${job.checkpoint} against ${job.images}\n`);
  const report = await scoreSources({ real: job.images, fake: job.checkpoint, num, realFeatureCache });
  rows.push(
    `| ${job.label} | ${info.config.G.resolution} | ${info.meta.kimg ?? '?'} | ` +
      `${report.kid.toFixed(4)} ± ${report.kid_std.toFixed(4)} | ` +
      `${report.diversity_fake.toFixed(2)} / ${report.diversity_real.toFixed(2)} (${(100 * report.diversity_ratio).toFixed(0)}%) | ` +
      `${report.num_fake} vs ${report.num_real} | ${report.seconds.toFixed(0)} s |`,
  );
}
console.log(
  `Scored ${started}, backend ${values.backend}, ${num} images a side (fewer where a set is smaller).\n`,
);
console.log(
  '| model | res | kimg | KID-nsfwMNv2 vs own set | diversity: samples / set (64 each) | images | time |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const row of rows) console.log(row);
