// `facestyle jobs list|inspect|cancel`: the job queue for operators, from outside the bot. Works
// with both queues (FACESTYLE_QUEUE_URL decides, as for the bot).
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { type JobSystemConfig, jobConfigFromEnv } from '../../jobs/config.ts';
import { formatDuration } from '../../jobs/errors.ts';
import { type JobInfo, type JobStatus, TERMINAL_STATUSES } from '../../jobs/types.ts';
import type { JobView } from '../../jobs/view.ts';
import { positiveInt } from '../options.ts';

/** Where the offline demo (`npm start` without a token) keeps its queue. */
const DEMO_DATA_DIR = join('out', 'demo', 'data');

/**
 * Loaded on use: the queue clients (BullMQ, SQLite) are not needed by other commands. Null when the
 * embedded queue's store does not exist yet: looking must not create an empty one.
 */
async function openView(opts: { dataDir?: string; queueUrl?: string }): Promise<JobView | null> {
  const config = locateStore(opts);
  if (!config) return null;
  const { openJobView } = await import('../../jobs/view.ts');
  return openJobView(config);
}

/**
 * The job system to look at. With the embedded queue's default SQLite file and no data folder
 * named, a repository where only the offline demo ran shows the demo's jobs (out/demo/data), said
 * on stderr, rather than a new empty store in data/.
 */
function locateStore(opts: { dataDir?: string; queueUrl?: string }): JobSystemConfig | null {
  const config = configFrom(opts);
  const file = sqliteFile(config.storeUrl);
  if (config.queueUrl || file === null || existsSync(file)) return config;
  const dataDirNamed = Boolean(opts.dataDir || process.env.FACESTYLE_DATA_DIR);
  if (!dataDirNamed) {
    const demo = configFrom({ ...opts, dataDir: DEMO_DATA_DIR });
    const demoFile = sqliteFile(demo.storeUrl);
    if (demoFile && existsSync(demoFile)) {
      process.stderr.write(
        `no job store in ${relative(process.cwd(), config.dataDir) || '.'}/: showing the offline demo's jobs (${DEMO_DATA_DIR}); give --data-dir or FACESTYLE_DATA_DIR for another\n`,
      );
      return demo;
    }
  }
  process.stderr.write(
    `no job store at ${file} yet: the bot, \`npm start\` or a worker creates it with the first job` +
      `${dataDirNamed ? '' : ` (the offline demo's is in ${DEMO_DATA_DIR})`}; give --data-dir or FACESTYLE_DATA_DIR for another data folder\n`,
  );
  return null;
}

function sqliteFile(storeUrl: string): string | null {
  return storeUrl.startsWith('sqlite://') ? storeUrl.slice('sqlite://'.length) : null;
}

const STATUSES: JobStatus[] = ['queued', 'running', ...TERMINAL_STATUSES];

function parseStatuses(text: string): JobStatus[] {
  const statuses = text.split(',').map((s) => s.trim()) as JobStatus[];
  const unknown = statuses.filter((status) => !STATUSES.includes(status));
  if (unknown.length)
    throw new UserError(`unknown status "${unknown.join(', ')}"`, `use ${STATUSES.join(', ')}`);
  return statuses;
}

function configFrom(opts: { dataDir?: string; queueUrl?: string }): JobSystemConfig {
  return jobConfigFromEnv({
    ...process.env,
    ...(opts.dataDir ? { FACESTYLE_DATA_DIR: opts.dataDir } : {}),
    ...(opts.queueUrl ? { FACESTYLE_QUEUE_URL: opts.queueUrl } : {}),
  });
}

function age(ms: number): string {
  return formatDuration(Date.now() - ms);
}

function statusText(job: JobInfo): string {
  if (job.status === 'queued') return `queued #${job.position ?? '?'}`;
  if (job.status === 'running') return `running ${Math.round((job.progress?.fraction ?? 0) * 100)}%`;
  return job.status;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, col) => Math.max(...rows.map((row) => row[col].length)));
  return rows
    .map((row) =>
      row
        .map((cell, col) => cell.padEnd(widths[col]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function describe(job: JobInfo): string {
  const lines = [
    `job ${job.id}: ${job.kind}, ${statusText(job)}`,
    `  user ${job.userId}, lane ${job.lane}, priority ${job.priority}, attempt ${job.attempt}/${job.maxAttempts}`,
    `  created ${new Date(job.createdAt).toISOString()} (${age(job.createdAt)} ago)`,
  ];
  if (job.startedAt)
    lines.push(`  started ${new Date(job.startedAt).toISOString()}${job.worker ? ` on ${job.worker}` : ''}`);
  if (job.finishedAt) lines.push(`  finished ${new Date(job.finishedAt).toISOString()}`);
  if (job.etaSeconds !== null) lines.push(`  estimated end in ${formatDuration(job.etaSeconds * 1000)}`);
  if (job.progress)
    lines.push(`  progress ${Math.round(job.progress.fraction * 100)}%: ${job.progress.stage}`);
  if (job.failure) lines.push(`  ${job.failure.code}: ${job.failure.message}`);
  if (job.batchSize) lines.push(`  ran in a batch of ${job.batchSize}`);
  lines.push(`  payload ${JSON.stringify(job.payload)}`);
  if (job.result !== undefined) lines.push(`  result ${JSON.stringify(job.result)}`);
  if (job.history.length) {
    lines.push('  history:');
    for (const entry of job.history) lines.push(`    ${new Date(entry.at).toISOString()} ${entry.event}`);
  }
  return lines.join('\n');
}

export function register(program: Command): void {
  const jobs = program
    .command('jobs')
    .description('list, inspect and cancel jobs of the queue')
    .option('--data-dir <dir>', 'data folder (or FACESTYLE_DATA_DIR)')
    .option('--queue-url <url>', 'BullMQ Redis URL (or FACESTYLE_QUEUE_URL); unset: the embedded queue');

  jobs
    .command('list')
    .description('newest jobs first')
    .option('--status <list>', `comma-separated: ${STATUSES.join(', ')}`)
    .option('--user <id>', 'only this user')
    .option('--kind <kind>', 'only this kind')
    .option('--limit <n>', 'most jobs shown', '30')
    .option('--json', 'one JSON object per job')
    .action(async (opts) => {
      const view = await openView(jobs.opts());
      if (!view) {
        process.stdout.write(opts.json ? '' : 'no jobs\n');
        return;
      }
      try {
        const list = await view.list({
          status: opts.status ? parseStatuses(opts.status) : undefined,
          userId: opts.user,
          kind: opts.kind,
          limit: positiveInt('--limit', opts.limit),
        });
        if (opts.json) {
          for (const job of list) process.stdout.write(`${JSON.stringify(job)}\n`);
        } else if (list.length === 0) {
          process.stdout.write(`no jobs (${view.backend} queue)\n`);
        } else {
          const rows = list.map((job) => [
            job.id,
            job.kind,
            statusText(job),
            job.userId,
            `${age(job.createdAt)} ago`,
            job.etaSeconds === null ? '' : `~${formatDuration(job.etaSeconds * 1000)}`,
            job.failure?.message ?? '',
          ]);
          process.stdout.write(
            `${table([['ID', 'KIND', 'STATUS', 'USER', 'CREATED', 'ETA', 'NOTE'], ...rows])}\n`,
          );
        }
      } finally {
        await view.close();
      }
    });

  jobs
    .command('inspect <id>')
    .description('everything about one job')
    .option('--json', 'as JSON')
    .action(async (id: string, opts) => {
      const view = await openView(jobs.opts());
      if (!view) throw new UserError(`no job with id ${id}: there is no job store`);
      try {
        const job = await view.get(id);
        if (!job) throw new UserError(`no job with id ${id}`, 'list them with `facestyle jobs list`');
        process.stdout.write(opts.json ? `${JSON.stringify(job, null, 2)}\n` : `${describe(job)}\n`);
      } finally {
        await view.close();
      }
    });

  jobs
    .command('cancel <id>')
    .description('cancel a queued or running job (as an operator)')
    .option('--by <name>', 'who cancels it, shown to the job owner', 'operator')
    .action(async (id: string, opts) => {
      const view = await openView(jobs.opts());
      if (!view) throw new UserError(`no job with id ${id}: there is no job store`);
      try {
        const { job, pending } = await view.cancel(id, { userId: opts.by, isAdmin: true });
        process.stdout.write(
          pending
            ? `cancellation of ${id} recorded; it applies when the bot's queue picks it up (status now: ${job.status})\n`
            : `job ${id} ${job.status}\n`,
        );
      } finally {
        await view.close();
      }
    });
}
