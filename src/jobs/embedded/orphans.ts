// Workers a previous owner of the embedded queue left behind. A worker whose owner died stops
// within its abort grace, but one inside a long synchronous operation (a GPU call) cannot notice
// until it returns; a new owner that started its job again meanwhile would run it twice at once.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../log.ts';
import type { JobRecord } from '../types.ts';
import { WORKER_ENTRY } from '../worker/supervisor.ts';

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether `pid` runs our worker entry (Linux /proc); elsewhere, or when unsure, false. */
async function isWorkerProcess(pid: number): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.split('\0').includes(WORKER_ENTRY);
  } catch {
    return false;
  }
}

/**
 * Waits until the workers (on this host) that ran the unfinished jobs of a previous owner are gone,
 * so their jobs are not started again while they still run them. Past `graceMs` (the owner's own
 * deadline for a stuck worker) a worker is killed, once /proc confirms the pid is still our worker
 * and not a reused pid.
 */
export async function outliveOrphanWorkers(
  unfinished: JobRecord[],
  options: { graceMs: number; log: Logger },
): Promise<void> {
  const here = `${hostname()}:`;
  const pids = new Set<number>();
  for (const record of unfinished) {
    if (record.status !== 'running' || !record.worker?.startsWith(here)) continue;
    const pid = Number(record.worker.slice(here.length));
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) pids.add(pid);
  }
  if (pids.size === 0) return;
  options.log.warn("waiting for the previous owner's workers to stop before resuming their jobs", {
    pids: [...pids],
  });
  const deadline = Date.now() + options.graceMs;
  while ([...pids].some(isAlive)) {
    if (Date.now() > deadline) {
      for (const pid of [...pids].filter(isAlive)) {
        if (!(await isWorkerProcess(pid))) continue;
        options.log.error("killing a previous owner's worker that did not stop", { pid });
        process.kill(pid, 'SIGKILL');
      }
      await sleep(200);
      return;
    }
    await sleep(100);
  }
}
