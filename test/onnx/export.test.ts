// `facestyle export <demo checkpoint> --format onnx` run for real through bin/facestyle.js, then the
// file on onnxruntime-node alone: seed 0 at psi 0.7 gives the pixels `facestyle generate --seeds 0
// --psi 0.7` writes (within 2/255), and the model has the documented interface.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderGrid } from '../../src/images/grid.ts';
import { readCheckpointInfo } from '../../src/model/checkpoint/info.ts';
import { zFromSeed } from '../../src/model/seeds.ts';
import { nchwToRgb } from '../../src/pipelines/engine.ts';

const BIN = fileURLToPath(new URL('../../bin/facestyle.js', import.meta.url));
const DEMO = fileURLToPath(new URL('../../checkpoints/demo-faces.safetensors', import.meta.url));
const run = promisify(execFile);
const env = { ...process.env, FACESTYLE_BACKEND: 'cpu', LOG_LEVEL: 'warn' };

async function pixels(png: Buffer | string): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

describe('ONNX export of a demo checkpoint', () => {
  let dir: string;
  let onnxPath: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'facestyle-onnx-export-'));
    onnxPath = join(dir, 'nested', 'g.onnx');
    const { stdout } = await run(
      process.execPath,
      [BIN, 'export', DEMO, '--format', 'onnx', '--out', onnxPath],
      {
        env,
      },
    );
    expect(stdout).toContain('wrote');
  }, 120_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('declares z [N, z_dim] + psi [1] -> img [N, 3, H, W]', async () => {
    const { config } = await readCheckpointInfo(DEMO);
    const session = await ort.InferenceSession.create(onnxPath);
    try {
      expect(session.inputNames).toEqual(['z', 'psi']);
      expect(session.outputNames).toEqual(['img']);
      const n = 2;
      const z = new Float32Array(n * config.G.zDim).map((_, i) => Math.sin(i));
      const out = await session.run({
        z: new ort.Tensor('float32', z, [n, config.G.zDim]),
        psi: new ort.Tensor('float32', Float32Array.of(1), [1]),
      });
      expect(out.img.dims).toEqual([n, 3, config.G.resolution, config.G.resolution]);
    } finally {
      await session.release();
    }
  });

  it('gives the pixels `facestyle generate --seeds 0 --psi 0.7` writes, within 2/255', async () => {
    const { config, meta } = await readCheckpointInfo(DEMO);
    const pngPath = join(dir, 'seed0.png');
    await run(
      process.execPath,
      [BIN, 'generate', '--checkpoint', DEMO, '--seeds', '0', '--psi', '0.7', '--out', pngPath],
      { env },
    );
    const session = await ort.InferenceSession.create(onnxPath);
    let img: Float32Array;
    try {
      const out = await session.run({
        z: new ort.Tensor('float32', zFromSeed(0, config.G.zDim), [1, config.G.zDim]),
        psi: new ort.Tensor('float32', Float32Array.of(0.7), [1]),
      });
      img = out.img.data as Float32Array;
    } finally {
      await session.release();
    }
    // The same grid the CLI draws around its one tile, from the ONNX model's pixels.
    const tile = nchwToRgb(img, 1, 3, config.G.resolution)[0];
    const grid = await renderGrid({
      tiles: [tile],
      columns: 1,
      tileLabels: ['seed 0'],
      title: `${meta.name} · psi 0.7`,
      tileSize: Math.max(128, config.G.resolution),
    });
    const cli = await pixels(pngPath);
    expect([grid.width, grid.height]).toEqual([cli.width, cli.height]);
    let maxDiff = 0;
    let differing = 0;
    for (let i = 0; i < cli.data.length; i++) {
      const d = Math.abs(cli.data[i] - grid.data[i]);
      maxDiff = Math.max(maxDiff, d);
      if (d > 0) differing++;
    }
    expect(maxDiff).toBeLessThanOrEqual(2);
    // Not a blank comparison: the tile has a face's range of values.
    expect(Math.max(...tile.data) - Math.min(...tile.data)).toBeGreaterThan(100);
    expect(differing).toBeLessThan(cli.data.length / 10);
  });
});
