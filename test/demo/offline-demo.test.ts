// The README's main command without a token: the offline demo runs the real pipeline (embedded
// queue, forked worker, the demo models in checkpoints/) and writes the grids it announces.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoResult, runDemo } from '../../src/demo/run.ts';

let outDir: string;
let result: DemoResult;
const lines: string[] = [];

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'facestyle-demo-'));
  // A smaller fine-tune than `npm start`'s: the pipeline is the same, CI's two cores are not.
  result = await runDemo({ outDir, finetuneImages: 8, finetuneEpochs: 1, log: (line) => lines.push(line) });
}, 600_000);
afterAll(async () => {
  await rm(outDir, { recursive: true, force: true });
});

describe('the offline demo (npm start without DISCORD_TOKEN)', () => {
  it('writes the generate grid, the blend, its matrix and a fine-tune preview, and says where', async () => {
    expect(Object.keys(result.files).sort()).toEqual([
      'blend',
      'blend-matrix',
      'finetune-preview',
      'generate',
    ]);
    const printed = lines.join('\n');
    for (const path of Object.values(result.files)) {
      expect(path.startsWith(outDir)).toBe(true);
      expect(printed).toContain(path);
      const meta = await sharp(await readFile(path)).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeGreaterThan(64);
    }
  });

  it('reports each job as it goes through the queue and completes', () => {
    const printed = lines.join('\n');
    for (const kind of ['generate', 'blend', 'finetune']) expect(printed).toContain(`${kind} completed`);
  });
});
