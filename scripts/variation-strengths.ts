// Renders docs/images/demo-variations.png: four faces, then four variations of the first at each
// strength, the picture "Vary" (docs/bot.md) was tuned by. Run it again after a new demo release:
//
//   node --import tsx scripts/variation-strengths.ts [--checkpoint checkpoints/demo-faces.safetensors] \
//     [--seed 7] [--strengths 0.2,0.35,0.5,0.6,0.8] [--psi 0.7] [--out docs/images/demo-variations.png]
//
// The variations' noise seeds are 1-4 in every row, so a row differs from the next by strength only.
import { parseArgs } from 'node:util';
import { encodeUnderLimit, renderGrid, tensorToRgb, writeImage } from '../src/images/index.ts';
import type { RgbImage } from '../src/images/tensor-image.ts';
import { initBackend } from '../src/model/backend.ts';
import { disposeCheckpoint, generatorParams, loadImageGenerator } from '../src/model/checkpoint/io.ts';
import { Generator } from '../src/model/networks/generator.ts';
import { generateFromSeeds } from '../src/model/sampling.ts';
import type { Variation } from '../src/model/seeds.ts';

const { values } = parseArgs({
  options: {
    checkpoint: { type: 'string', default: 'checkpoints/demo-faces.safetensors' },
    seed: { type: 'string', default: '7' },
    strengths: { type: 'string', default: '0.2,0.35,0.5,0.6,0.8' },
    psi: { type: 'string', default: '0.7' },
    out: { type: 'string', default: 'docs/images/demo-variations.png' },
  },
});
const seed = Number(values.seed);
const psi = Number(values.psi);
const strengths = values.strengths.split(',').map(Number);
if (!Number.isInteger(seed) || !(psi >= 0) || strengths.some((s) => !(s >= 0))) {
  console.error('--seed takes a whole number, --psi and --strengths numbers >= 0');
  process.exit(2);
}

await initBackend(process.env.FACESTYLE_BACKEND || 'wasm');
const checkpoint = await loadImageGenerator(values.checkpoint);
const G = new Generator(checkpoint.config.G, generatorParams(checkpoint));

async function faces(seeds: number[], variation?: Variation): Promise<RgbImage[]> {
  const images: RgbImage[] = [];
  await generateFromSeeds(G, seeds, async (batch) => void images.push(...(await tensorToRgb(batch))), {
    psi,
    ...(variation ? { variation } : {}),
  });
  return images;
}

const rows = [await faces([seed, seed + 1, seed + 2, seed + 3])];
for (const strength of strengths) rows.push(await faces([1, 2, 3, 4], { of: seed, strength }));
const grid = await renderGrid({
  rows,
  rowLabels: [`seeds ${seed}-${seed + 3}`, ...strengths.map((s) => `s ${s}`)],
  tileSize: Math.max(128, checkpoint.config.G.resolution * 2),
});
console.log(`wrote ${await writeImage(values.out, await encodeUnderLimit(grid))}`);
disposeCheckpoint(checkpoint);
