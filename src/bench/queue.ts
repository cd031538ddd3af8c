// `npm run bench -- queue`: jobs per second through each queue (embedded, BullMQ) with the no-op
// handler, and - given a handler module for a real kind (`--handlers`, `--kind`, `--payload`) - the
// same with a model, plus the batching gain of `generate` (16 concurrent single-image requests,
// batched vs one at a time).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { positiveInt } from '../cli/options.ts';
import { UserError } from '../errors.ts';
import { isRedisUrl } from '../jobs/bullmq/names.ts';
import { BUILTIN_HANDLERS, type JobSystemConfig } from '../jobs/config.ts';
import type { JobKind } from '../jobs/kinds.ts';
import type { JobInfo } from '../jobs/types.ts';
import { defaultStoreUrl } from '../store/keyv.ts';
import { machineDescription, markdownTable, today } from './common.ts';

export interface QueueBenchOptions {
  jobs: string;
  queue: string;
  queueUrl: string;
  handlers?: string[];
  kind: string;
  payload?: string;
  concurrent: string;
  compareBatching?: boolean;
}

export interface QueueRun {
  backend: 'embedded' | 'bullmq';
  kind: string;
  jobs: number;
  maxBatch?: number;
  jobsPerSecond: number;
  /** Work units (images for generate) per second. */
  unitsPerSecond: number;
  /** Submission to completion, median and 99th percentile. */
  p50Ms: number;
  p99Ms: number;
  meanBatch: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Payload of job `i`: generate jobs get distinct seeds, as concurrent users would send. */
function payloadFor(kind: string, base: Record<string, unknown>, i: number): Record<string, unknown> {
  if (kind === 'generate' || kind === 'blend') return { ...base, seeds: [1000 + i] };
  return base;
}

/**
 * Submits `jobs` jobs at once (as many users, through the real policy path), waits for all, and
 * measures from the first submission to the last completion. The worker is started and warmed
 * (one job of the kind) before the clock starts.
 */
export async function measureQueue(options: {
  backend: 'embedded' | 'bullmq';
  queueUrl: string;
  handlerModules: string[];
  kind: string;
  payload: Record<string, unknown>;
  jobs: number;
  maxBatch?: number;
}): Promise<QueueRun> {
  const { createJobQueue } = await import('../jobs/create.ts');
  const dataDir = await mkdtemp(join(tmpdir(), 'facestyle-bench-'));
  const prefix = `fsbench-${process.pid}-${Date.now().toString(36)}`;
  const config: JobSystemConfig = {
    dataDir,
    queueUrl: options.backend === 'bullmq' ? options.queueUrl : undefined,
    storeUrl: defaultStoreUrl(dataDir),
    prefix,
    handlerModules: options.handlerModules,
    localWorkers: 1,
    policy: { maxQueued: options.jobs + 10, maxActivePerUser: options.jobs + 10, kinds: {} },
    maintenance: {
      schedule: '17 * * * *',
      artifacts: { maxBytes: 2 ** 40, maxAgeMs: 86_400_000 },
      recordRetentionMs: 86_400_000,
    },
  };
  const queue = await createJobQueue({
    config,
    maxBatch: options.maxBatch,
    maintenance: false,
    timing: { drainDelaySeconds: 1, reconcileIntervalMs: 2_000 },
  });
  try {
    await queue.whenWorkersReady(300_000);
    const kind = options.kind as JobKind;
    const actor = { userId: 'bench', isAdmin: true };
    const warm = await queue.submit({ kind, payload: payloadFor(kind, options.payload, -1) as never, actor });
    const warmed = await queue.waitFor(warm.id, { timeoutMs: 600_000 });
    if (warmed.status !== 'completed')
      throw new Error(`warm-up job ${warmed.status}: ${warmed.failure?.message}`);

    const started = performance.now();
    const submittedAt = new Map<string, number>();
    const submitted = await Promise.all(
      Array.from({ length: options.jobs }, async (_, i) => {
        const job = await queue.submit({
          kind,
          payload: payloadFor(kind, options.payload, i) as never,
          actor,
        });
        submittedAt.set(job.id, performance.now());
        return job;
      }),
    );
    const latencies: number[] = [];
    const done: JobInfo[] = await Promise.all(
      submitted.map(async (job) => {
        const finished = await queue.waitFor(job.id, { timeoutMs: 3_600_000 });
        latencies.push(performance.now() - submittedAt.get(job.id)!);
        return finished;
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const failed = done.filter((job) => job.status !== 'completed');
    if (failed.length)
      throw new Error(`${failed.length} jobs did not complete: ${failed[0].failure?.message}`);
    latencies.sort((a, b) => a - b);
    const units = done.reduce((sum, job) => sum + job.units, 0);
    return {
      backend: options.backend,
      kind: options.kind,
      jobs: options.jobs,
      maxBatch: options.maxBatch,
      jobsPerSecond: options.jobs / seconds,
      unitsPerSecond: units / seconds,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      meanBatch: done.reduce((sum, job) => sum + (job.batchSize ?? 1), 0) / done.length,
    };
  } finally {
    await queue.close();
    if (options.backend === 'bullmq') {
      const { removeQueueKeys } = await import('../jobs/bullmq/cleanup.ts');
      await removeQueueKeys(options.queueUrl, prefix);
    }
    await rm(dataDir, { recursive: true, force: true });
  }
}

function parsePayload(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  try {
    const value = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value;
  } catch {
    // reported below
  }
  throw new UserError(`--payload must be a JSON object, got ${text}`);
}

export function register(bench: Command): void {
  bench
    .command('queue')
    .description('jobs/s through the embedded and BullMQ queues; generate batching gain with a model handler')
    .option('--jobs <n>', 'jobs per measurement', '200')
    .option('--queue <name>', 'embedded | bullmq | both', 'both')
    .option(
      '--queue-url <url>',
      'Redis for the BullMQ queue',
      process.env.FACESTYLE_QUEUE_URL || 'redis://127.0.0.1:6379',
    )
    .option('--handlers <modules...>', 'handler modules of real kinds (e.g. a tiny-model generate handler)')
    .option('--kind <kind>', 'job kind to measure', 'noop')
    .option('--payload <json>', 'payload of each job (generate: seeds are set per job)')
    .option('--concurrent <n>', 'jobs submitted at once for --compare-batching', '16')
    .option('--compare-batching', 'generate: images/s batched vs not, --concurrent single-image jobs')
    .action(async (opts: QueueBenchOptions) => {
      const backends: Array<'embedded' | 'bullmq'> =
        opts.queue === 'both' ? ['embedded', 'bullmq'] : [opts.queue as 'embedded' | 'bullmq'];
      if (!backends.every((b) => b === 'embedded' || b === 'bullmq')) {
        throw new UserError(`--queue must be embedded, bullmq or both, got "${opts.queue}"`);
      }
      if (backends.includes('bullmq') && !isRedisUrl(opts.queueUrl))
        throw new UserError('--queue-url must be redis://');
      const handlerModules = [BUILTIN_HANDLERS, ...(opts.handlers ?? []).map((m) => resolve(m))];
      const payload = parsePayload(opts.payload);
      const runs: QueueRun[] = [];
      for (const backend of backends) {
        const common = { backend, queueUrl: opts.queueUrl, handlerModules, kind: opts.kind, payload };
        if (opts.compareBatching) {
          const jobs = positiveInt('--concurrent', opts.concurrent);
          runs.push(await measureQueue({ ...common, jobs, maxBatch: 1 }));
          runs.push(await measureQueue({ ...common, jobs }));
        } else {
          runs.push(await measureQueue({ ...common, jobs: positiveInt('--jobs', opts.jobs) }));
        }
      }
      const rows = runs.map((run) => [
        run.backend,
        run.kind,
        run.jobs,
        run.maxBatch === 1 ? 'off' : 'on',
        run.jobsPerSecond.toFixed(1),
        run.unitsPerSecond.toFixed(1),
        run.meanBatch.toFixed(1),
        Math.round(run.p50Ms),
        Math.round(run.p99Ms),
      ]);
      process.stdout.write(`\n### Queue throughput (${today()}, ${machineDescription()})\n\n`);
      process.stdout.write(
        `${markdownTable(['queue', 'kind', 'jobs', 'batching', 'jobs/s', 'units/s', 'mean batch', 'p50 ms', 'p99 ms'], rows)}\n`,
      );
    });
}
