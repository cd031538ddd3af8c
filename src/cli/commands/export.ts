// `facestyle export <checkpoint> --format nvidia-safetensors|nvidia-pt|onnx --out F [--network G_ema|G|D]`
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { initBackend } from '../../model/backend.ts';
import {
  EXPORT_FORMATS,
  exportCheckpoint,
  parseExportFormat,
  parseNetworkName,
} from '../../model/import/exporter.ts';
import { exportOnnx } from '../../model/onnx/export.ts';

interface ExportCliOptions {
  format: string;
  out: string;
  network?: string;
}

export function register(program: Command): void {
  program
    .command('export')
    .description('write a checkpoint for the official PyTorch tools (official names and layouts, float32)')
    .argument('<checkpoint>', 'checkpoint (.safetensors)')
    .requiredOption(
      '--format <format>',
      [...EXPORT_FORMATS, 'onnx (the generator, for ONNX Runtime)'].join(' | '),
    )
    .requiredOption('--out <file>', 'file to write')
    .option('--network <name>', 'only this network (G_ema | G | D), with bare names for load_state_dict')
    .action(async (checkpoint: string, opts: ExportCliOptions) => {
      if (opts.format === 'onnx') {
        await initBackend(program.opts().backend ?? 'cpu');
        await mkdir(dirname(opts.out), { recursive: true });
        const r = await exportOnnx(checkpoint, opts.out);
        process.stdout.write(
          `wrote ${r.out} (onnx, ${(r.bytes / 2 ** 20).toFixed(1)} MiB: z [N,${r.zDim}] + psi [1] -> img [N,${r.imgChannels},${r.resolution},${r.resolution}])\n`,
        );
        return;
      }
      const format = parseExportFormat(opts.format);
      const network = opts.network === undefined ? undefined : parseNetworkName(opts.network);
      await initBackend(program.opts().backend ?? 'cpu');
      await mkdir(dirname(opts.out), { recursive: true });
      const report = await exportCheckpoint(checkpoint, { format, out: opts.out, network });
      process.stdout.write(
        `wrote ${report.out} (${report.format}: ${report.networks.join(' + ')}, ${report.tensors} tensors)\n`,
      );
    });
}
