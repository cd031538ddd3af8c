// The offline demo (`npm start` without a Discord token): the real pipeline without Discord. Jobs go
// through the embedded queue to a forked worker process, which runs the demo models (generate,
// blend with its epoch x layer matrix, a short fine-tune) and writes the grids the bot would post.
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { jobConfigFromEnv } from '../jobs/config.ts';
import { createJobQueue } from '../jobs/create.ts';
import type { JobKind } from '../jobs/kinds.ts';
import type { JobInfo } from '../jobs/types.ts';
import { ModelRegistry, modelDirs } from '../pipelines/registry.ts';
import { bestScored } from '../pipelines/score/best.ts';
import { writeDemoDataset } from './data.ts';

export const DEMO_BASE = 'demo-faces';
export const DEMO_STYLE = 'demo-lorelei';

export interface DemoOptions {
  outDir?: string;
  /** Fine-tune epochs of the quick demo fine-tune (each = 2 x images, with mirroring). */
  finetuneEpochs?: number;
  finetuneImages?: number;
  log?: (line: string) => void;
}

export interface DemoResult {
  outDir: string;
  files: Record<string, string>;
}

export async function runDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const outDir = resolve(opts.outDir ?? 'out/demo');
  const dataDir = join(outDir, 'data');
  const log = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  await mkdir(outDir, { recursive: true });

  const registry = new ModelRegistry(modelDirs(dataDir));
  const base = await registry.resolve(DEMO_BASE).catch(() => {
    throw new UserError(
      `the demo base model "${DEMO_BASE}" is not in checkpoints/`,
      'rebuild the demo models: npm run demo:train',
    );
  });
  const snapshots = await registry.snapshots(DEMO_STYLE);
  if (snapshots.length === 0)
    throw new UserError(
      `no snapshots of the demo style "${DEMO_STYLE}" in checkpoints/`,
      'rebuild the demo models: npm run demo:train',
    );
  // The best-scored snapshot, as /blend picks without an epoch (else the middle of the ladder).
  const style = bestScored(snapshots) ?? snapshots[Math.floor((snapshots.length - 1) / 2)];
  log(
    `demo models: base ${base.name} (${base.resolution}px), style ${style.name} at epochs ${snapshots.map((s) => s.epoch).join(', ')}`,
  );

  const queue = await createJobQueue({
    config: { ...jobConfigFromEnv({ ...process.env, FACESTYLE_DATA_DIR: dataDir, FACESTYLE_QUEUE_URL: '' }) },
  });
  const actor = { userId: 'offline-demo', isAdmin: true };
  const unsubscribe = queue.subscribe((e) => {
    if (e.type === 'progress' && e.job.progress)
      log(`  ${e.job.kind} ${Math.round(e.job.progress.fraction * 100)}% ${e.job.progress.stage}`);
    else if (e.type !== 'progress') log(`  ${e.job.kind} ${e.type}${e.reason ? `: ${e.reason}` : ''}`);
  });
  const files: Record<string, string> = {};
  const keep = async (label: string, from: string | undefined) => {
    if (!from) return;
    const to = join(outDir, `${label}${extname(from)}`);
    await copyFile(from, to);
    files[label] = to;
  };
  const finish = async <K extends JobKind>(job: JobInfo & { kind: K }) => {
    const done = await queue.waitFor(job.id, { timeoutMs: 30 * 60_000 });
    if (done.status !== 'completed')
      throw new Error(`demo ${job.kind} job ${done.status}: ${done.failure?.message ?? ''}`);
    return done;
  };

  try {
    log('1/3 generate: 16 faces from the base model');
    const gen = await finish(
      await queue.submit({
        kind: 'generate',
        payload: { checkpoint: base.path, seeds: [...Array(16).keys()], psi: 0.7, grid: true },
        actor,
      }),
    );
    if (gen.kind === 'generate' && gen.result) await keep('generate', gen.result.gridPath);

    log(`2/3 blend: base | style | blend at layer 16, and the epoch x layer matrix`);
    const blend = await finish(
      await queue.submit({
        kind: 'blend',
        payload: {
          base: base.path,
          style: style.path,
          layer: 16,
          seeds: [0, 1, 2, 3, 4, 5],
          psi: 0.7,
          direction: 'texture',
          matrix: true,
        },
        actor,
      }),
    );
    if (blend.kind === 'blend' && blend.result) {
      await keep('blend', blend.result.gridPath);
      await keep('blend-matrix', blend.result.matrixPath);
    }

    const images = opts.finetuneImages ?? 64;
    const epochs = opts.finetuneEpochs ?? 1;
    log(
      `3/3 fine-tune: ${epochs} epoch(s) of the base on ${images} notionists faces (a quick taste; the demo style took longer)`,
    );
    const datasetDir = join(dataDir, 'datasets', `notionists-${images}`);
    await writeDemoDataset('notionists', datasetDir, images, base.resolution);
    const runDir = join(dataDir, 'runs', 'demo-quick-finetune');
    await rm(runDir, { recursive: true, force: true });
    const ft = await finish(
      await queue.submit({
        kind: 'finetune',
        payload: { datasetDir, base: base.path, epochs, snapshotEvery: 1, runDir },
        actor,
      }),
    );
    if (ft.kind === 'finetune' && ft.result)
      await keep('finetune-preview', ft.result.snapshots.at(-1)?.previewPath);
  } finally {
    unsubscribe();
    await queue.close();
  }
  log(`\nwrote ${Object.keys(files).length} grids to ${outDir}:`);
  for (const [label, path] of Object.entries(files)) log(`  ${label}: ${path}`);
  return { outDir, files };
}
