// The body of a training round thread (round-threads.ts): its own engine on the main thread's CPU
// backend, copies of G and D as variables, and PhaseRounds to compute the rounds it is sent.
import { parentPort } from 'node:worker_threads';
import { initBackend } from '../backend.ts';
import { tf } from '../tf.ts';
import { TrainingSet } from './data.ts';
import type { ParamsData, RoundThreadReply, RoundThreadRequest } from './round-threads.ts';
import { PhaseRounds } from './rounds.ts';

if (!parentPort) throw new Error('round-thread.ts runs as a worker thread of round-threads.ts');
const port = parentPort;

let networks: { G: Map<string, tf.Variable>; D: Map<string, tf.Variable>; rounds: PhaseRounds } | null = null;

function variables(params: ParamsData): Map<string, tf.Variable> {
  return new Map(
    Object.entries(params).map(([name, { data, shape }]) => [
      name,
      tf.variable(tf.tensor(data, shape), true),
    ]),
  );
}

function assign(target: Map<string, tf.Variable>, values: Record<string, Float32Array> | undefined): void {
  if (!values) return;
  for (const [name, data] of Object.entries(values)) {
    const v = target.get(name);
    if (!v) throw new Error(`unknown parameter ${name}`);
    tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
  }
}

async function handle(message: RoundThreadRequest): Promise<RoundThreadReply> {
  if (message.type === 'init') {
    const { init } = message;
    await initBackend(init.backend);
    const G = variables(init.G);
    const D = variables(init.D);
    const data = new TrainingSet(init.pixels, init.resolution, init.dataId);
    networks = { G, D, rounds: new PhaseRounds(init.gCfg, init.dCfg, G, D, init.hyper, data) };
    return { ok: true };
  }
  if (!networks) throw new Error('a round thread got work before its networks');
  assign(networks.G, message.G);
  assign(networks.D, message.D);
  const sums = await networks.rounds.run(message.phase, message.rounds, message.ctx, message.items);
  sums.wMean?.dispose();
  const grads: Record<string, Float32Array> = {};
  for (const [name, g] of sums.grads) grads[name] = (await g.data()) as Float32Array;
  tf.dispose([...sums.grads.values()]);
  return { ok: true, sums: { grads, loss: sums.loss, signSum: sums.signSum, plMeans: sums.plMeans } };
}

port.on('message', (message: RoundThreadRequest) => {
  handle(message).then(
    // Copied, not transferred: on wasm a tensor's data may be a view of the engine's heap.
    (reply) => port.postMessage(reply),
    (err: Error) =>
      port.postMessage({ ok: false, error: err.message, stack: err.stack } satisfies RoundThreadReply),
  );
});
