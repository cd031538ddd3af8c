// Messages between a queue owner and the worker process it forks, and the worker's start-up
// configuration (passed as JSON in one environment variable, so argv stays readable in `ps`).

import type { AbortReason, ExecJob, ExecOutcome } from '../executor.ts';
import type { Lane } from '../kinds.ts';
import type { JobProgress } from '../types.ts';

export type ToWorker =
  | { type: 'run'; jobs: ExecJob[] }
  | { type: 'abort'; id: string; reason: AbortReason }
  | { type: 'shutdown' };

export interface WorkerReady {
  type: 'ready';
  pid: number;
  workerId: string;
  kinds: string[];
  batchLimits: Record<string, number>;
}

export type FromWorker =
  | WorkerReady
  | { type: 'progress'; id: string; progress: JobProgress }
  | { type: 'done'; id: string; outcome: ExecOutcome }
  /** A handler ignored its abort: send nothing more, the process exits after its last reports. */
  | { type: 'stuck'; id: string };

export interface BullWorkerSettings {
  url: string;
  prefix: string;
  lanes: Lane[];
  /** A job whose lock is not renewed for this long is taken as abandoned (its worker died). */
  lockDurationMs: number;
  /** How often abandoned jobs are looked for. */
  stalledIntervalMs: number;
  /** Seconds a worker blocks waiting for a job before it polls again. */
  drainDelaySeconds: number;
}

export interface WorkerProcessConfig {
  transport: 'ipc' | 'bullmq';
  dataDir: string;
  /** Modules exporting `register(registry, env)`, as absolute paths or file URLs. */
  handlerModules: string[];
  abortGraceMs: number;
  progressIntervalMs: number;
  /** Caps batch sizes; 1 turns batching off. */
  maxBatch?: number;
  bullmq?: BullWorkerSettings;
}

export const WORKER_CONFIG_ENV = 'FACESTYLE_WORKER_CONFIG';
