import { setTimeout as sleep } from 'node:timers/promises';
import type { JobKinds } from '../kinds.ts';
import type { JobHandler } from './registry.ts';

/** Waits `durationMs` in `steps` progress reports; measures the queue without a model. */
export const noopHandler: JobHandler<JobKinds, 'noop'> = async (payload, ctx) => {
  const steps = payload.steps ?? 1;
  const stepMs = (payload.durationMs ?? 0) / steps;
  for (let step = 1; step <= steps; step++) {
    ctx.signal.throwIfAborted();
    if (stepMs > 0) await sleep(stepMs, undefined, { signal: ctx.signal });
    ctx.progress({ fraction: step / steps, stage: `step ${step}/${steps}` });
  }
  return { steps, pid: process.pid };
};
