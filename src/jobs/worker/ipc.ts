// The worker side of the embedded queue: jobs arrive from the parent (the queue owner) over the
// IPC channel, progress and outcomes go back the same way. The parent decides what runs when.
import { type Logger, logger } from '../../log.ts';
import { internalFailure } from '../errors.ts';
import type { ExecSink, JobExecutor } from '../executor.ts';
import type { FromWorker, ToWorker, WorkerReady } from './protocol.ts';

function send(message: FromWorker): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected || !process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

export interface IpcWorkerOptions {
  ready: WorkerReady;
  abortGraceMs: number;
  log?: Logger;
}

export interface ParentLink {
  /** A handler ignored its abort: tell the parent, let the other jobs go back, and exit. */
  stuck(jobId: string): void;
}

export function serveParent(executor: JobExecutor, options: IpcWorkerOptions): ParentLink {
  const log = options.log ?? logger('worker');
  const stuckIds = new Set<string>();
  const sink: ExecSink = {
    progress: (id, progress) => void send({ type: 'progress', id, progress }),
    done: (id, outcome) => void send({ type: 'done', id, outcome }),
  };
  let exiting = false;
  /** Interrupts the running jobs (they are reported back as interrupted) and exits once they are. */
  const exitAfterJobs = (why: string, code: number) => {
    if (exiting) return;
    exiting = true;
    log.info('worker shutting down', { why, running: executor.runningIds().length });
    executor.abortAll({ code: 'shutdown' });
    const started = Date.now();
    const poll = setInterval(() => {
      const left = executor.runningIds().filter((id) => !stuckIds.has(id));
      if (left.length === 0 || Date.now() - started > options.abortGraceMs) {
        clearInterval(poll);
        // An empty message as a barrier: every report sent before it has been written.
        void send({ type: 'progress', id: '', progress: { fraction: 0, stage: '', at: 0 } }).then(() =>
          process.exit(code),
        );
      }
    }, 20);
  };
  process.on('message', (message: ToWorker) => {
    switch (message.type) {
      case 'run':
        if (exiting) return;
        executor.run(message.jobs, sink).catch((err) => {
          const failure = internalFailure(log, 'could not run jobs', err, {
            jobs: message.jobs.map((job) => job.id),
          });
          for (const job of message.jobs) sink.done(job.id, { status: 'failed', failure, busyMs: 0 });
        });
        break;
      case 'abort':
        executor.abort(message.id, message.reason);
        break;
      case 'shutdown':
        exitAfterJobs('asked by the queue owner', 0);
        break;
    }
  });
  // The owner died (kill -9) or closed the channel: nobody will take our results any more.
  process.on('disconnect', () => exitAfterJobs('the queue owner went away', 0));
  // A service manager stopping the whole process group: hand the jobs back rather than vanish.
  process.on('SIGTERM', () => exitAfterJobs('SIGTERM', 0));
  process.on('SIGINT', () => exitAfterJobs('SIGINT', 0));
  void send(options.ready);
  return {
    stuck(jobId) {
      stuckIds.add(jobId);
      void send({ type: 'stuck', id: jobId });
      // Deferred: the stuck job's own report is sent right after this call returns.
      setImmediate(() => exitAfterJobs(`job ${jobId} ignored its abort signal`, 70));
    },
  };
}
