// `facestyle worker`: a GPU worker for the BullMQ queue, on this machine or another one. It
// supervises the worker process (restarting it if it dies) until SIGINT/SIGTERM. The embedded
// queue needs no separate worker: the bot forks its own.
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';
import { DEFAULT_BULL_WORKER } from '../../jobs/bullmq/names.ts';
import { jobConfigFromEnv } from '../../jobs/config.ts';
import { LANES, type Lane } from '../../jobs/kinds.ts';
import { DEFAULT_TIMING } from '../../jobs/timing.ts';
import { WorkerSupervisor } from '../../jobs/worker/supervisor.ts';
import { logger } from '../../log.ts';
import { ArtifactStore } from '../../store/artifacts.ts';
import { positiveInt } from '../options.ts';

function parseLanes(text: string): Lane[] {
  const lanes = text.split(',').map((s) => s.trim()) as Lane[];
  if (lanes.length === 0 || lanes.some((lane) => !LANES.includes(lane))) {
    throw new UserError(`--lanes must list ${LANES.join(' and/or ')}, got "${text}"`);
  }
  return lanes;
}

export function register(program: Command): void {
  program
    .command('worker')
    .description('run a GPU worker for the Redis (BullMQ) queue')
    .option('--queue-url <url>', 'Redis URL of the queue (or FACESTYLE_QUEUE_URL)')
    .option('--data-dir <dir>', 'data folder for artifacts (or FACESTYLE_DATA_DIR); shared with the bot')
    .option('--lanes <list>', 'short (generate, blend, toonify) and/or long (fine-tunes)', LANES.join(','))
    .option('--handlers <modules...>', 'extra handler modules to load (each exports register(registry, env))')
    .option('--max-batch <n>', 'largest generate batch (1 turns batching off)')
    .action(async (opts) => {
      const config = jobConfigFromEnv({
        ...process.env,
        ...(opts.dataDir ? { FACESTYLE_DATA_DIR: opts.dataDir } : {}),
        ...(opts.queueUrl ? { FACESTYLE_QUEUE_URL: opts.queueUrl } : {}),
      });
      if (!config.queueUrl) {
        throw new UserError(
          'a separate worker needs the Redis queue: set FACESTYLE_QUEUE_URL or --queue-url',
          'with the embedded queue (no Redis) the bot starts its own worker process',
        );
      }
      const log = logger('worker');
      const supervisor = new WorkerSupervisor({
        name: 'worker',
        log,
        config: {
          transport: 'bullmq',
          dataDir: config.dataDir,
          handlerModules: [
            ...config.handlerModules,
            ...((opts.handlers as string[] | undefined) ?? []).map((m) => resolve(m)),
          ],
          abortGraceMs: DEFAULT_TIMING.abortGraceMs,
          progressIntervalMs: DEFAULT_TIMING.progressIntervalMs,
          maxBatch: opts.maxBatch === undefined ? undefined : positiveInt('--max-batch', opts.maxBatch),
          bullmq: {
            ...DEFAULT_BULL_WORKER,
            lanes: parseLanes(opts.lanes),
            url: config.queueUrl,
            prefix: config.prefix,
          },
        },
      });
      // This machine's artifacts: the worker cannot see which jobs are unfinished, so folders
      // touched within the last hour count as in use.
      const cleanup = new ArtifactStore(join(config.dataDir, 'artifacts'), log).schedule(
        config.maintenance.schedule,
        config.maintenance.artifacts,
        (entry) => Date.now() - entry.modifiedAt < 3_600_000,
      );
      supervisor.start();
      const ready = await supervisor.whenReady(120_000);
      log.info('serving', { pid: ready.pid, kinds: ready.kinds, lanes: opts.lanes });
      await new Promise<void>((done) => {
        const stop = () => {
          log.info('stopping: running jobs go back to the queue');
          void Promise.all([supervisor.stop(), cleanup.destroy()]).then(() => done());
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
