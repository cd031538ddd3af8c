// `facestyle export <checkpoint> --format onnx`: the image generator (G_ema, else G) as a
// standalone ONNX model: inputs z [N, z_dim] and psi [1] (float32), output img [N, C, H, W] in
// about [-1, 1] (NCHW, as the official networks), const noise. Runs in onnxruntime-web, Python
// onnxruntime or anything that reads opset 17.
import { rename, rm, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { disposeCheckpoint, generatorParams, loadImageGenerator } from '../checkpoint/io.ts';
import { buildGeneratorModel, type OnnxNoiseMode } from './generator-graph.ts';
import { readWeights } from './session.ts';

export interface OnnxExportReport {
  out: string;
  bytes: number;
  resolution: number;
  zDim: number;
  imgChannels: number;
}

export async function exportOnnx(
  checkpointPath: string,
  out: string,
  opts: { noise?: Exclude<OnnxNoiseMode, 'random'> } = {},
): Promise<OnnxExportReport> {
  const ckpt = await loadImageGenerator(checkpointPath);
  try {
    const cfg = ckpt.config.G;
    const model = buildGeneratorModel(cfg, await readWeights(generatorParams(ckpt)), {
      part: 'generator',
      noise: opts.noise ?? 'const',
      description: `StyleGAN2 generator "${ckpt.meta.name}" from ${basename(checkpointPath)}: z [N,${cfg.zDim}], psi [1] -> img [N,${cfg.imgChannels},${cfg.resolution},${cfg.resolution}] in [-1,1]`,
    });
    // Written beside the target and renamed: a failed export never leaves half a model behind.
    const partial = `${out}.partial`;
    try {
      await writeFile(partial, model);
      await rename(partial, out);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    return {
      out,
      bytes: model.byteLength,
      resolution: cfg.resolution,
      zDim: cfg.zDim,
      imgChannels: cfg.imgChannels,
    };
  } finally {
    disposeCheckpoint(ckpt);
  }
}
