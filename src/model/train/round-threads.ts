// The round threads of a training step on CPU backends. One wasm (or cpu) engine computes on one
// core, so a minibatch split into rounds (batchSize / batchGpu) can run its rounds side by side:
// each thread holds a copy of G and D, computes the gradients of its rounds (rounds.ts,
// PhaseRounds, as the main thread does), and sends them back; the main thread sums them,
// takes the Adam steps and sends the networks' new values before the next phase that needs them.
// Data-parallel training as NVlabs' training_loop.py does it across GPUs, on the cores of one
// machine, with the same result as running the rounds one after another (up to float sums).
import { Worker } from 'node:worker_threads';
import type { DiscriminatorConfig, GeneratorConfig } from '../config.ts';
import { tf } from '../tf.ts';
import type { TrainHyperparameters } from './hyperparameters.ts';
import type { Phase, RoundContext } from './rounds.ts';

/** Parameter values by name, as they cross threads. */
export type ParamsData = Record<string, { data: Float32Array; shape: number[] }>;

export interface RoundThreadInit {
  backend: string;
  gCfg: GeneratorConfig;
  dCfg: DiscriminatorConfig;
  hyper: TrainHyperparameters;
  /** Every parameter and buffer of G and D at the start. */
  G: ParamsData;
  D: ParamsData;
  pixels: Uint8Array;
  resolution: number;
  dataId: string;
}

/** A thread's answer: the gradients summed over its rounds, and the rounds' other sums. */
export interface RoundSumsData {
  grads: Record<string, Float32Array>;
  loss: number;
  signSum: number;
  plMeans: [number, number][];
}

export type RoundThreadRequest =
  | { type: 'init'; init: RoundThreadInit }
  | {
      type: 'run';
      phase: Phase;
      ctx: RoundContext;
      items: number[];
      rounds: number[];
      /** New values of the trainable parameters of the networks that changed since the last run. */
      G?: Record<string, Float32Array>;
      D?: Record<string, Float32Array>;
    };

export type RoundThreadReply =
  | { ok: true; sums?: RoundSumsData }
  | { ok: false; error: string; stack?: string };

/** Reads every variable of a network (values copied out of the engine). */
export async function readParams(params: Map<string, tf.Tensor>): Promise<ParamsData> {
  const out: ParamsData = {};
  for (const [name, v] of params) out[name] = { data: (await v.data()) as Float32Array, shape: [...v.shape] };
  return out;
}

async function readValues(params: Map<string, tf.Tensor>): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  for (const [name, v] of params) out[name] = (await v.data()) as Float32Array;
  return out;
}

const THREAD_SCRIPT = new URL('./round-thread.mjs', import.meta.url);

class RoundThread {
  private pending: { resolve: (r: RoundThreadReply) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;
  /** The network versions this thread holds. */
  readonly versions = { G: 0, D: 0 };

  constructor(readonly worker: Worker) {
    worker.on('message', (reply: RoundThreadReply) => {
      const p = this.pending;
      this.pending = null;
      p?.resolve(reply);
    });
    worker.on('error', (err) => this.fail(new Error(`a training round thread failed: ${err.message}`)));
    worker.on('exit', (code) => this.fail(new Error(`a training round thread stopped (exit code ${code})`)));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const p = this.pending;
    this.pending = null;
    p?.reject(this.failure);
  }

  /** Sends one request and waits for its answer (one at a time). */
  async request(
    message: RoundThreadRequest,
    transfer: ArrayBuffer[] = [],
  ): Promise<RoundSumsData | undefined> {
    if (this.failure) throw this.failure;
    if (this.pending) throw new Error('a round thread got a request while busy');
    const reply = await new Promise<RoundThreadReply>((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(message, transfer);
    });
    if (!reply.ok) {
      const err = new Error(`a training round thread failed: ${reply.error}`);
      if (reply.stack) err.stack = `${err.message}\n(in the round thread) ${reply.stack}`;
      throw err;
    }
    return reply.sums;
  }
}

export interface NetworkVersion {
  version: number;
  params: Map<string, tf.Tensor>;
}

export class RoundThreads {
  private constructor(private readonly threads: RoundThread[]) {}

  get size(): number {
    return this.threads.length;
  }

  /** Starts `count` threads, each with its engine, the networks and the training set. */
  static async start(count: number, init: Omit<RoundThreadInit, 'backend'>): Promise<RoundThreads> {
    const backend = tf.getBackend();
    if (backend !== 'wasm' && backend !== 'cpu') {
      throw new Error(`round threads are for the CPU backends (wasm, cpu), not ${backend}`);
    }
    // No execArgv of this process (tsx's --import, a test runner's flags): the script registers tsx itself.
    const threads = Array.from(
      { length: count },
      () => new RoundThread(new Worker(THREAD_SCRIPT, { execArgv: [] })),
    );
    const pool = new RoundThreads(threads);
    try {
      await Promise.all(threads.map((t) => t.request({ type: 'init', init: { ...init, backend } })));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /**
   * Sends `phase` to every thread (thread t its `roundsOf(t)`), with the networks whose version a
   * thread does not hold yet. Resolves once every request is posted (so the caller computes its own
   * rounds while the threads compute theirs) with the promise of every thread's sums.
   */
  async send(
    phase: Phase,
    ctx: RoundContext,
    items: readonly number[],
    roundsOf: (thread: number) => number[],
    networks: { G: NetworkVersion; D: NetworkVersion },
  ): Promise<{ answers: Promise<RoundSumsData[]> }> {
    const stale = (net: 'G' | 'D') => this.threads.some((t) => t.versions[net] !== networks[net].version);
    const values = {
      G: stale('G') ? await readValues(networks.G.params) : undefined,
      D: stale('D') ? await readValues(networks.D.params) : undefined,
    };
    const requests = this.threads.map(async (thread, t) => {
      const message: RoundThreadRequest = { type: 'run', phase, ctx, items: [...items], rounds: roundsOf(t) };
      for (const net of ['G', 'D'] as const) {
        if (thread.versions[net] === networks[net].version) continue;
        message[net] = values[net];
        thread.versions[net] = networks[net].version;
      }
      const sums = await thread.request(message);
      if (!sums) throw new Error('a round thread answered a run without sums');
      return sums;
    });
    const answers = Promise.all(requests);
    // Observed at once: the caller awaits it only after its own rounds, which may fail first.
    answers.catch(() => undefined);
    return { answers };
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }
}
