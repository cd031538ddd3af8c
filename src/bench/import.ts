// `npm run bench -- import`: `facestyle import` of a paper256 G + G_ema + D (random weights) in the
// three formats official weights come in: an NVIDIA network pickle, a torch.save zip of a
// state_dict, and an official-name safetensors export. Each import runs in a fresh process (as the
// CLI does), so its peak RSS is its own.
import { fork } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import type { Command } from 'commander';
import { positiveInt } from '../cli/options.ts';
import { initBackend } from '../model/backend.ts';
import {
  type ConfigHints,
  discriminatorTorchShapes,
  generatorTorchShapes,
  saveCheckpoint,
} from '../model/checkpoint/io.ts';
import { tfToTorch } from '../model/checkpoint/layout.ts';
import { paper256Config } from '../model/config.ts';
import { exportCheckpoint } from '../model/import/exporter.ts';
import {
  decorateDiscriminator,
  decorateGenerator,
  moduleTree,
  networkPickle,
  type TorchArray,
} from '../model/import/network-pickle-writer.ts';
import { initParams } from '../model/init.ts';
import { Discriminator } from '../model/networks/discriminator.ts';
import { Generator } from '../model/networks/generator.ts';
import { disposeParams, type ParamStore } from '../model/params.ts';
import { machineDescription, markdownTable, today } from './common.ts';
import type { ImportJob, ImportJobResult } from './import-worker.ts';

const WORKER = fileURLToPath(new URL('./import-worker.ts', import.meta.url));

/** A network's tensors in PyTorch layout, in official order. */
async function torchArrays(
  params: ParamStore,
  shapes: Map<string, number[]>,
): Promise<Map<string, TorchArray>> {
  const out = new Map<string, TorchArray>();
  for (const name of shapes.keys()) {
    const tensor = params.get(name)!;
    out.set(name, tfToTorch(name, tensor.shape, (await tensor.data()) as Float32Array));
  }
  return out;
}

function runImport(job: ImportJob): Promise<ImportJobResult> {
  return new Promise((resolve, reject) => {
    const child = fork(WORKER, [JSON.stringify(job)], {
      execArgv: ['--import', import.meta.resolve('tsx')],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: ImportJobResult | undefined;
    child.on('message', (message) => {
      result = message as ImportJobResult;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (result && code === 0) resolve(result);
      else reject(new Error(`import of ${job.source} failed (exit ${code ?? signal})`));
    });
  });
}

const MiB = (kib: number) => Math.round(kib / 1024);
const sec = (s: number | null) => (s === null ? 'in read' : s.toFixed(1));

export function register(bench: Command): void {
  bench
    .command('import')
    .description('facestyle import of a 256x256 paper256 G + G_ema + D as .pkl, .pt and .safetensors')
    .option('--repeats <n>', 'imports per format (one table row each)', '1')
    .action(async (opts: { repeats: string }, cmd: Command) => {
      // As `facestyle import`: the CPU backend unless --backend says otherwise.
      const backend: string = cmd.optsWithGlobals().backend ?? 'cpu';
      const info = await initBackend(backend);
      const config = paper256Config();
      const dir = await mkdtemp(join(tmpdir(), 'facestyle-bench-import-'));
      const log = (line: string) => process.stderr.write(`${line}\n`);
      try {
        log('initialising a paper256 G_ema, G and D...');
        const G_ema = initParams(Generator.specs(config.G), 1);
        const G = initParams(Generator.specs(config.G), 2);
        const D = initParams(Discriminator.specs(config.D!), 3);
        const source = join(dir, 'source.safetensors');
        const meta = { name: 'bench-import', kind: 'base' as const, createdAt: new Date().toISOString() };
        await saveCheckpoint(source, { config, meta, G_ema, G, D });

        log('writing network.pkl...');
        const gShapes = generatorTorchShapes(config.G);
        const generator = async (params: ParamStore) =>
          decorateGenerator(moduleTree('Generator', await torchArrays(params, gShapes)), {
            zDim: config.G.zDim,
            mappingLayers: config.G.mappingLayers,
            convClamp: config.G.convClamp,
            mappingLrMultiplier: config.G.mappingLrMultiplier,
          });
        // One expression, so the 300 MB buffer is garbage once written.
        await writeFile(
          join(dir, 'network.pkl'),
          networkPickle(
            {
              G: await generator(G),
              D: decorateDiscriminator(
                moduleTree('Discriminator', await torchArrays(D, discriminatorTorchShapes(config.D!))),
                { mbstdGroupSize: config.D!.mbstdGroupSize, convClamp: config.D!.convClamp },
              ),
              G_ema: await generator(G_ema),
            },
            { resolution: config.G.resolution },
          ),
        );
        for (const params of [G_ema, G, D]) disposeParams(params);

        log('writing state_dict.pt and nvidia.safetensors (facestyle export)...');
        await exportCheckpoint(source, { format: 'nvidia-pt', out: join(dir, 'state_dict.pt') });
        await exportCheckpoint(source, {
          format: 'nvidia-safetensors',
          out: join(dir, 'nvidia.safetensors'),
        });
        await rm(source);

        const inputs: Array<{ label: string; file: string; hints: ConfigHints }> = [
          { label: '`.pkl` NVIDIA network pickle (G, D, G_ema)', file: 'network.pkl', hints: {} },
          // A state_dict does not record the minibatch-std group: the CLI's --mbstd-group 8.
          {
            label: '`.pt` torch.save zip, state_dict (`--mbstd-group 8`)',
            file: 'state_dict.pt',
            hints: { mbstdGroupSize: 8 },
          },
          { label: '`.safetensors` nvidia-safetensors export', file: 'nvidia.safetensors', hints: {} },
        ];
        const rows: Array<Array<string | number>> = [];
        const startRss: number[] = [];
        for (const input of inputs) {
          for (let r = 0; r < positiveInt('--repeats', opts.repeats); r++) {
            log(`importing ${input.file}...`);
            const out = join(dir, 'imported.safetensors');
            const { report, startRssKiB, peakRssKiB } = await runImport({
              source: join(dir, input.file),
              out,
              backend: info.name,
              hints: input.hints,
            });
            if (!isDeepStrictEqual(report.config, config))
              throw new Error(`${input.file} imported as ${JSON.stringify(report.config)}, not paper256`);
            if (!isDeepStrictEqual(report.networks, ['G_ema', 'G', 'D']))
              throw new Error(`${input.file} imported only ${report.networks.join(', ')}`);
            await rm(out);
            const mb = report.sourceBytes / 1e6;
            const t = report.timings;
            rows.push([
              today(),
              info.name,
              input.label,
              mb.toFixed(1),
              report.seconds.toFixed(1),
              (mb / report.seconds).toFixed(1),
              sec(t.hash),
              sec(t.read),
              sec(t.parse),
              sec(t.convert),
              sec(t.write),
              MiB(peakRssKiB),
            ]);
            startRss.push(MiB(startRssKiB));
          }
        }
        const header = [
          'date',
          'backend',
          'input',
          'file MB',
          'total s',
          'MB/s',
          'sha256 s',
          'read s',
          'parse s',
          'convert s',
          'write s',
          'peak RSS MiB',
        ];
        process.stdout.write(
          `Machine: ${machineDescription(info)}\n\n${markdownTable(header, rows)}\n\n` +
            `Peak RSS is the import process's high-water mark (VmHWM); it was ${Math.min(...startRss)}-${Math.max(...startRss)} MiB ` +
            'with the backend started, before the import.\n',
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
}
