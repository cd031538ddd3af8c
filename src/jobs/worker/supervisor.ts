// Forks the worker process and keeps one running: restarts it (with backoff) when it dies, and
// stops it on request. The child runs TypeScript through tsx's loader, as bin/facestyle.js does,
// since the repository has no build step.
import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Logger, logger } from '../../log.ts';
import {
  type FromWorker,
  type ToWorker,
  WORKER_CONFIG_ENV,
  type WorkerProcessConfig,
  type WorkerReady,
} from './protocol.ts';

export const WORKER_ENTRY = fileURLToPath(new URL('./main.ts', import.meta.url));

function tsxLoader(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
}

export interface WorkerExit {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when `stop()` asked for it. */
  planned: boolean;
}

export interface SupervisorOptions {
  config: WorkerProcessConfig;
  /** Shown in logs. */
  name?: string;
  restartDelayMs?: { min: number; max: number };
  /** How long `stop()` waits for the child to finish its jobs before killing it. */
  stopGraceMs?: number;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
}

type Events = {
  ready: [WorkerReady];
  message: [FromWorker];
  exit: [WorkerExit];
};

/** A child that lived this long was healthy: its death restarts the backoff from the minimum. */
const HEALTHY_UPTIME_MS = 30_000;

export class WorkerSupervisor extends EventEmitter<Events> {
  private child?: ChildProcess;
  private readyInfo?: WorkerReady;
  private stopping = false;
  private quickFailures = 0;
  private restartTimer?: NodeJS.Timeout;
  private readonly log: Logger;
  private readonly restartDelay: { min: number; max: number };

  constructor(private readonly options: SupervisorOptions) {
    super();
    this.log = options.log ?? logger(options.name ?? 'supervisor');
    this.restartDelay = options.restartDelayMs ?? { min: 200, max: 30_000 };
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The running child's announcement, once it has loaded its handlers. */
  get ready(): WorkerReady | undefined {
    return this.readyInfo;
  }

  start(): void {
    this.stopping = false;
    this.spawn();
  }

  /** Resolves when a child is ready (now or after a restart). */
  whenReady(timeoutMs = 60_000): Promise<WorkerReady> {
    if (this.readyInfo) return Promise.resolve(this.readyInfo);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('ready', onReady);
        reject(new Error(`the worker process was not ready after ${timeoutMs} ms`));
      }, timeoutMs);
      const onReady = (info: WorkerReady) => {
        clearTimeout(timer);
        resolve(info);
      };
      this.once('ready', onReady);
    });
  }

  send(message: ToWorker): boolean {
    const child = this.child;
    if (!child?.connected || !this.readyInfo) return false;
    try {
      child.send(message);
      return true;
    } catch {
      return false;
    }
  }

  /** Stops handing work to the running child (it is about to exit); the next child is used once ready. */
  retire(): void {
    this.readyInfo = undefined;
  }

  /** Kills the running child at once (a stuck job); it is restarted like after a crash. */
  kill(): void {
    this.child?.kill('SIGKILL');
  }

  /** Asks the child to finish (its jobs are interrupted and go back to the queue), then kills it. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.send({ type: 'shutdown' } satisfies ToWorker);
    const timer = setTimeout(() => child.kill('SIGKILL'), this.options.stopGraceMs ?? 10_000);
    await exited;
    clearTimeout(timer);
  }

  private spawn(): void {
    const startedAt = Date.now();
    const child = fork(WORKER_ENTRY, [], {
      execArgv: ['--import', tsxLoader()],
      env: { ...process.env, ...this.options.env, [WORKER_CONFIG_ENV]: JSON.stringify(this.options.config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child = child;
    this.readyInfo = undefined;
    child.on('message', (message: FromWorker) => {
      if (message.type === 'ready') {
        this.readyInfo = message;
        this.log.info('worker ready', { pid: message.pid, kinds: message.kinds });
        this.emit('ready', message);
      } else {
        this.emit('message', message);
      }
    });
    child.on('error', (err) => this.log.error('worker process error', { error: err.message }));
    child.once('exit', (code, signal) => {
      const pid = child.pid ?? 0;
      if (this.child === child) {
        this.child = undefined;
        this.readyInfo = undefined;
      }
      const planned = this.stopping;
      if (!planned) this.log.warn('worker process exited', { pid, code, signal });
      this.emit('exit', { pid, code, signal, planned });
      if (planned) return;
      this.quickFailures = Date.now() - startedAt > HEALTHY_UPTIME_MS ? 0 : this.quickFailures + 1;
      const delay = Math.min(
        this.restartDelay.max,
        this.restartDelay.min * 2 ** Math.max(0, this.quickFailures - 1),
      );
      this.restartTimer = setTimeout(() => {
        if (!this.stopping) this.spawn();
      }, delay);
    });
  }
}
