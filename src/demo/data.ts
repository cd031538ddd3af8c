// Procedural face datasets for the demo models, reproducible from a seed and free to use:
// facesjs (Apache-2.0) cartoon people stand in for the "real faces" base, DiceBear's lorelei and
// notionists (CC0) are the styles. Rendered from SVG with sharp, so no download is needed.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lorelei, notionists } from '@dicebear/collection';
import { createAvatar } from '@dicebear/core';
import { faceToSvgString, generate } from 'facesjs';
import sharp from 'sharp';

export type DemoDataset = 'faces' | 'lorelei' | 'notionists';

export const DEMO_DATASETS: Record<DemoDataset, { license: string; source: string }> = {
  faces: { license: 'Apache-2.0', source: 'facesjs 5 (procedural cartoon people)' },
  lorelei: { license: 'CC0-1.0', source: 'DiceBear lorelei (Lisa Wischofsky)' },
  notionists: { license: 'CC0-1.0', source: 'DiceBear notionists (Zoish)' },
};

/** mulberry32: a small seeded PRNG, enough to make facesjs's Math.random choices reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function withSeededRandom<T>(seed: number, f: () => T): T {
  const original = Math.random;
  Math.random = mulberry32(seed);
  try {
    return f();
  } finally {
    Math.random = original;
  }
}

const BACKGROUNDS = ['b6e3f4', 'c0aede', 'd1d4f9', 'ffd5dc', 'ffdfbf'];

/** One face as a PNG at `resolution`. */
export async function renderDemoFace(
  dataset: DemoDataset,
  seed: number,
  resolution: number,
): Promise<Buffer> {
  if (dataset === 'faces') {
    const svg = withSeededRandom(seed, () => faceToSvgString(generate())).replace(
      'width="100%" height="100%"',
      'width="400" height="600"',
    );
    // The 400x600 portrait holds the head in its upper part: crop a square around it.
    return sharp(Buffer.from(svg))
      .extract({ left: 0, top: 50, width: 400, height: 400 })
      .flatten({ background: '#ffffff' })
      .resize(resolution, resolution, { kernel: 'lanczos3' })
      .png()
      .toBuffer();
  }
  const options = { seed: `demo-${seed}`, size: 256, backgroundColor: BACKGROUNDS };
  const svg = (
    dataset === 'lorelei' ? createAvatar(lorelei, options) : createAvatar(notionists, options)
  ).toString();
  return sharp(Buffer.from(svg))
    .flatten({ background: '#ffffff' })
    .resize(resolution, resolution, { kernel: 'lanczos3' })
    .png()
    .toBuffer();
}

/** Writes `count` faces as 000000.png ... into `dir` (a dataset folder for fine-tuning). */
export async function writeDemoDataset(
  dataset: DemoDataset,
  dir: string,
  count: number,
  resolution: number,
  onProgress?: (done: number) => void,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    await writeFile(
      join(dir, `${String(i).padStart(6, '0')}.png`),
      await renderDemoFace(dataset, i, resolution),
    );
    onProgress?.(i + 1);
  }
  await writeFile(
    join(dir, 'LICENSE.txt'),
    `${DEMO_DATASETS[dataset].source}\nLicense: ${DEMO_DATASETS[dataset].license}\nSeeds 0..${count - 1}, ${resolution}x${resolution}, rendered by facestyle src/demo/data.ts\n`,
  );
}
