// `npm run bench -- conv-grad`: the convolution gradients training runs, old and new path timed back
// to back in one process: the filter gradient as the composite (pad, transpose, a product per tap,
// batch sum) vs the one-program implicit GEMM (webgpu), and the stride-2 input gradient through
// tfjs's naive transposed-conv program vs its matMul-based one (WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE).
import type { Command } from 'commander';
import { positiveInt } from '../cli/options.ts';
import { type BackendName, initBackend } from '../model/backend.ts';
import type { SpatialPadding } from '../model/ops/conv.ts';
import {
  conv2dBackpropFilterComposite,
  conv2dBackpropFilterDifferentiable,
  conv2dBackpropInputDifferentiable,
} from '../model/ops/grad/conv2d.ts';
import { tf } from '../model/tf.ts';
import { machineDescription, markdownTable, timeIt, today } from './common.ts';

interface GradCase {
  name: string;
  input: [number, number, number, number];
  kernel: number;
  outChannels: number;
  stride: 1 | 2;
  pad: number;
}

/** Layer shapes of a 256x256 network with narrow channels (lavapipe runs these in seconds). */
function cases(batch: number, channels: number): GradCase[] {
  return [
    {
      name: '3x3 conv, 64x64',
      input: [batch, 64, 64, channels],
      kernel: 3,
      outChannels: channels,
      stride: 1,
      pad: 1,
    },
    {
      name: '3x3 down-conv (stride 2, after the FIR), 66x66 -> 32x32',
      input: [batch, 66, 66, channels],
      kernel: 3,
      outChannels: 2 * channels,
      stride: 2,
      pad: 0,
    },
    {
      name: '1x1 toRGB, 128x128',
      input: [batch, 128, 128, channels],
      kernel: 1,
      outChannels: 3,
      stride: 1,
      pad: 0,
    },
  ];
}

function outputShape(c: GradCase): [number, number, number, number] {
  const out = (size: number) => Math.floor((size + 2 * c.pad - c.kernel) / c.stride) + 1;
  return [c.input[0], out(c.input[1]), out(c.input[2]), c.outChannels];
}

async function msPerCall(run: () => tf.Tensor, seconds: number): Promise<number> {
  const { perSecond } = await timeIt(
    async () => {
      const t = run();
      await t.data();
      t.dispose();
    },
    { warmup: 2, minSeconds: seconds, minIters: 3 },
  );
  return 1000 / perSecond;
}

export async function benchConvGrad(o: {
  backend?: string;
  batch: number;
  channels: number;
  seconds: number;
}): Promise<string> {
  const info = await initBackend(o.backend as BackendName | undefined);
  const rows: Array<Array<string | number>> = [];
  const row = (what: string, c: GradCase, oldMs: number, newMs: number) =>
    rows.push([
      today(),
      info.name,
      what,
      `${c.name}, ${c.input[3]} -> ${c.outChannels} ch, batch ${c.input[0]}`,
      oldMs.toFixed(1),
      newMs.toFixed(1),
      (oldMs / newMs).toFixed(2),
    ]);
  for (const c of cases(o.batch, o.channels)) {
    const pad: SpatialPadding = [
      [c.pad, c.pad],
      [c.pad, c.pad],
    ];
    const x = tf.randomNormal(c.input) as tf.Tensor4D;
    const dy = tf.randomNormal(outputShape(c)) as tf.Tensor4D;
    const w = tf.randomNormal([c.kernel, c.kernel, c.input[3], c.outChannels]) as tf.Tensor4D;
    const size: [number, number] = [c.kernel, c.kernel];
    const composite = await msPerCall(
      () => conv2dBackpropFilterComposite(x, dy, c.stride, pad, size),
      o.seconds,
    );
    const current = await msPerCall(
      () => conv2dBackpropFilterDifferentiable(x, dy, c.stride, pad, size),
      o.seconds,
    );
    row('filter gradient: composite -> current kernel', c, composite, current);
    if (c.stride === 2 && info.name === 'webgpu') {
      const inputGrad = () =>
        conv2dBackpropInputDifferentiable(dy, w, c.stride, pad, [c.input[1], c.input[2]]);
      const flag = 'WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE';
      const previous = tf.env().getBool(flag);
      try {
        tf.env().set(flag, true);
        const naive = await msPerCall(inputGrad, o.seconds);
        tf.env().set(flag, false);
        const matMul = await msPerCall(inputGrad, o.seconds);
        row('stride-2 input gradient: naive -> matMul (MM) program', c, naive, matMul);
      } finally {
        tf.env().set(flag, previous);
      }
    }
    tf.dispose([x, dy, w]);
  }
  const header = ['date', 'backend', 'what', 'shape', 'old ms', 'new ms', 'old/new'];
  return `${machineDescription(info)}\n\n${markdownTable(header, rows)}`;
}

export function register(bench: Command): void {
  bench
    .command('conv-grad')
    .description(
      'convolution gradients, old vs new path in one run (filter gradient; stride-2 input gradient)',
    )
    .option('--batch <n>', 'batch size', '4')
    .option('--channels <n>', 'input channels of the layers timed', '32')
    .option('--seconds <s>', 'timed seconds per measurement (after 2 warm-up calls)', '2')
    .action(async (opts: Record<string, string>, cmd: Command) => {
      const out = await benchConvGrad({
        backend: cmd.optsWithGlobals().backend,
        batch: positiveInt('--batch', opts.batch),
        channels: positiveInt('--channels', opts.channels),
        seconds: positiveInt('--seconds', opts.seconds),
      });
      process.stdout.write(`${out}\n`);
    });
}
