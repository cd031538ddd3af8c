// Entry of the worker process (forked by the bot, or by `facestyle worker`): loads the handler
// modules once, then serves jobs from the embedded queue's owner over IPC or from BullMQ.
import { hostname } from 'node:os';
import { join } from 'node:path';
import { logger } from '../../log.ts';
import { serveBullQueues } from '../bullmq/lane-runner.ts';
import { JobExecutor } from '../executor.ts';
import { type HandlerModule, HandlerRegistry } from '../handlers/registry.ts';
import { serveParent } from './ipc.ts';
import { WORKER_CONFIG_ENV, type WorkerProcessConfig, type WorkerReady } from './protocol.ts';

const log = logger(`worker ${process.pid}`);
const raw = process.env[WORKER_CONFIG_ENV];
if (!raw) {
  log.error(`${WORKER_CONFIG_ENV} is not set: this process is started by the queue, not by hand`);
  process.exit(2);
}
const config = JSON.parse(raw) as WorkerProcessConfig;

const registry = new HandlerRegistry();
for (const specifier of config.handlerModules) {
  const mod = (await import(specifier)) as Partial<HandlerModule>;
  if (typeof mod.register !== 'function') {
    log.error('handler module has no register(registry, env) export', { module: specifier });
    process.exit(2);
  }
  await mod.register(registry, { dataDir: config.dataDir, log });
}

const workerId = `${hostname()}:${process.pid}`;
// Set once the transport is up; the executor reports stuck handlers through it.
let onStuck: (jobId: string) => void = () => process.exit(70);
const executor = new JobExecutor(registry, {
  artifactsRoot: join(config.dataDir, 'artifacts'),
  abortGraceMs: config.abortGraceMs,
  progressIntervalMs: config.progressIntervalMs,
  maxBatch: config.maxBatch,
  log,
  onStuck: (jobId) => onStuck(jobId),
});
const ready: WorkerReady = {
  type: 'ready',
  pid: process.pid,
  workerId,
  kinds: registry.kinds(),
  batchLimits: executor.batchLimits(),
};

if (config.transport === 'ipc') {
  const parent = serveParent(executor, { ready, abortGraceMs: config.abortGraceMs, log });
  onStuck = (jobId) => parent.stuck(jobId);
} else {
  if (!config.bullmq) throw new Error('a bullmq worker needs bullmq settings');
  const served = await serveBullQueues(executor, {
    ...config.bullmq,
    workerId,
    abortGraceMs: config.abortGraceMs,
    log,
  });
  // The stuck job is failed in Redis first; then the other lanes hand their jobs back and we exit.
  onStuck = (jobId) => {
    setTimeout(
      () => void served.stop(`job ${jobId} ignored its abort signal`, 70, config.abortGraceMs),
      1_000,
    );
  };
  if (process.send) process.send(ready);
}
