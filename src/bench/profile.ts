// `npm run bench -- profile`: what one generator forward and one training phase really run, counted
// by hooking the engine (kernels, their shapes -> FLOPs) and on webgpu the backend (GPU programs).
// Programs are GPU dispatches on webgpu and leaf kernels elsewhere. Op counts do not depend on the
// channel widths or the batch, FLOPs do: count FLOPs at the real sizes (cpu or wasm, batch 1).
import type { Command } from 'commander';
import { positiveInt } from '../cli/options.ts';
import { type BackendName, initBackend } from '../model/backend.ts';
import { defaultDiscriminatorConfig, defaultGeneratorConfig } from '../model/config.ts';
import { initParams } from '../model/init.ts';
import { Discriminator } from '../model/networks/discriminator.ts';
import { Generator } from '../model/networks/generator.ts';
import { trainingConvOps } from '../model/ops/grad/install.ts';
import { disposeParams, type ParamStore } from '../model/params.ts';
import { tf } from '../model/tf.ts';
import { discriminatorFakeLoss, discriminatorRealLoss, generatorLoss } from '../model/train/loss.ts';
import { markdownTable, today } from './common.ts';
import { countKernels, type KernelCounts } from './kernel-counter.ts';

export interface ProfileOptions {
  backend?: string;
  res: number;
  batch: number;
  channelBase: number;
  channelMax: number;
  mappingLayers: number;
  /** Skip the training phases (a forward only, e.g. FLOPs at full size on a slow backend). */
  forwardOnly: boolean;
}

function programs(c: KernelCounts): number {
  return c.gpuDispatches ?? c.leafKernels;
}

function asVariables(params: ParamStore): Map<string, tf.Variable> {
  return new Map([...params].map(([name, t]) => [name, tf.variable(t, true, `profile/${name}`)]));
}

/** The trainable (non-buffer) parameters of a network, by its specs. */
function trainable(vars: Map<string, tf.Variable>, specs: Array<{ name: string; buffer?: boolean }>) {
  const buffers = new Set(specs.filter((s) => s.buffer).map((s) => s.name));
  return [...vars].filter(([name]) => !buffers.has(name)).map(([, v]) => v);
}

/** Waits for every gradient: the phase is only over when its results exist. */
async function settle(grads: tf.NamedTensorMap, value: tf.Tensor): Promise<void> {
  await value.data();
  for (const g of Object.values(grads)) await g.data();
  tf.dispose([value, ...Object.values(grads)]);
}

export async function profile(o: ProfileOptions): Promise<Record<string, unknown>> {
  const info = await initBackend(o.backend as BackendName | undefined);
  const sizes = { resolution: o.res, channelBase: o.channelBase, channelMax: o.channelMax };
  const gCfg = defaultGeneratorConfig({ ...sizes, mappingLayers: o.mappingLayers });
  const dCfg = defaultDiscriminatorConfig({ ...sizes, mbstdGroupSize: Math.min(4, o.batch) });
  const gParams = initParams(Generator.specs(gCfg), 1);
  const dParams = initParams(Discriminator.specs(dCfg), 2);
  const z = tf.randomNormal([o.batch, gCfg.zDim]) as tf.Tensor2D;
  const result: Record<string, unknown> = {
    date: today(),
    backend: info.name,
    adapter: info.adapter ? `${info.adapter.description || info.adapter.device}` : null,
    res: o.res,
    batch: o.batch,
    channel_base: o.channelBase,
    channel_max: o.channelMax,
    programs_are: info.name === 'webgpu' ? 'GPU dispatches' : 'leaf kernels',
  };
  try {
    const inference = new Generator(gCfg, gParams);
    // One untimed pass first: first-call work (uploads, caches) is not what a forward costs.
    (
      await countKernels(async () => {
        const img = inference.generate(z, { noiseMode: 'const' });
        await img.data();
        img.dispose();
      })
    ).result;
    const forward = await countKernels(async () => {
      const img = inference.generate(z, { noiseMode: 'const' });
      await img.data();
      img.dispose();
    });
    result.g_forward_gflop_per_image = Number((forward.counts.flops / o.batch / 1e9).toFixed(3));
    result.g_forward_programs = programs(forward.counts);
    result.g_forward_kernels = forward.counts.leafKernels;
    result.g_forward_by_kernel = forward.counts.byName;
    if (forward.counts.programsByName) result.g_forward_programs_by_kernel = forward.counts.programsByName;
    if (!o.forwardOnly) Object.assign(result, await trainingPhases(o, gCfg, dCfg, gParams, dParams));
  } finally {
    z.dispose();
    disposeParams(gParams);
    disposeParams(dParams);
  }
  return result;
}

async function trainingPhases(
  o: ProfileOptions,
  gCfg: ReturnType<typeof defaultGeneratorConfig>,
  dCfg: ReturnType<typeof defaultDiscriminatorConfig>,
  gParams: ParamStore,
  dParams: ParamStore,
): Promise<Record<string, unknown>> {
  const gVars = asVariables(gParams);
  const dVars = asVariables(dParams);
  const ops = trainingConvOps();
  const G = new Generator(gCfg, gVars, { convOps: ops });
  const D = new Discriminator(dCfg, dVars, { convOps: ops });
  const gTrainable = trainable(gVars, Generator.specs(gCfg));
  const dTrainable = trainable(dVars, Discriminator.specs(dCfg));
  const reals = tf.randomUniform([o.batch, o.res, o.res, 3], -1, 1) as tf.Tensor4D;
  const z = tf.randomNormal([o.batch, gCfg.zDim]) as tf.Tensor2D;
  // G main: G forward, D forward, gradients into G's weights (as the trainer's phase, without augment).
  const gMain = async () => {
    const { value, grads } = tf.variableGrads(
      () => tf.mean(generatorLoss(D.forward(G.synthesize(G.map(z), { noiseMode: 'random' })))) as tf.Scalar,
      gTrainable,
    );
    await settle(grads, value);
  };
  // D main: generated images (outside the tape), then D on fakes and reals, gradients into D.
  const dMain = async () => {
    const fakes = tf.tidy(() => G.synthesize(G.map(z), { noiseMode: 'random' }));
    const { value, grads } = tf.variableGrads(
      () =>
        tf.add(
          tf.mean(discriminatorFakeLoss(D.forward(fakes))),
          tf.mean(discriminatorRealLoss(D.forward(reals))),
        ) as tf.Scalar,
      dTrainable,
    );
    await settle(grads, value);
    fakes.dispose();
  };
  try {
    await gMain();
    const g = await countKernels(gMain);
    await dMain();
    const d = await countKernels(dMain);
    return {
      g_main_programs: programs(g.counts),
      g_main_kernels: g.counts.leafKernels,
      g_main_gflop_per_image: Number((g.counts.flops / o.batch / 1e9).toFixed(3)),
      g_main_by_kernel: g.counts.byName,
      ...(g.counts.programsByName ? { g_main_programs_by_kernel: g.counts.programsByName } : {}),
      d_main_programs: programs(d.counts),
      d_main_kernels: d.counts.leafKernels,
      d_main_gflop_per_image: Number((d.counts.flops / o.batch / 1e9).toFixed(3)),
      d_main_by_kernel: d.counts.byName,
      ...(d.counts.programsByName ? { d_main_programs_by_kernel: d.counts.programsByName } : {}),
    };
  } finally {
    tf.dispose([reals, z]);
    for (const v of [...gVars.values(), ...dVars.values()]) v.dispose();
  }
}

export function register(bench: Command): void {
  bench
    .command('profile')
    .description('kernels, GPU programs and FLOPs of one generator forward and one G/D training phase')
    .option('--res <px>', 'resolution', '256')
    .option('--batch <n>', 'batch size', '1')
    .option('--channel-base <n>', 'channel_base (paper256: 16384)', '16384')
    .option('--channel-max <n>', 'channel_max (paper256: 512)', '512')
    .option('--mapping-layers <n>', 'mapping layers', '8')
    .option('--forward-only', 'count the generator forward only')
    .option('--json', 'print one JSON object (with the kernels per name) instead of a Markdown row')
    .action(async (opts: Record<string, string | boolean | undefined>, cmd: Command) => {
      const result = await profile({
        backend: cmd.optsWithGlobals().backend,
        res: positiveInt('--res', String(opts.res)),
        batch: positiveInt('--batch', String(opts.batch)),
        channelBase: positiveInt('--channel-base', String(opts.channelBase)),
        channelMax: positiveInt('--channel-max', String(opts.channelMax)),
        mappingLayers: positiveInt('--mapping-layers', String(opts.mappingLayers)),
        forwardOnly: opts.forwardOnly === true,
      });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
        return;
      }
      const columns = [
        'date',
        'backend',
        'res',
        'channel_base',
        'channel_max',
        'batch',
        'g_forward_gflop_per_image',
        'g_forward_programs',
        'g_main_programs',
        'd_main_programs',
      ];
      process.stdout.write(`${markdownTable(columns, [columns.map((c) => String(result[c] ?? '-'))])}\n`);
    });
}
