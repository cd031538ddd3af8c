// Procedural face datasets for the demo models, reproducible from a seed and free to use:
// facesjs (Apache-2.0) cartoon people stand in for the "real faces" base, DiceBear styles (CC0) are
// the styles. Rendered from SVG with sharp, so no download is needed. `facestyle demo data` writes
// the exact training sets of scripts/train-demo-models.sh with these functions.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { adventurer, bigSmile, lorelei, micah, notionists, personas } from '@dicebear/collection';
import { createAvatar, type Style } from '@dicebear/core';
import { type FaceConfig, faceToSvgString, generate } from 'facesjs';
import sharp from 'sharp';

/** The DiceBear styles a demo style set can be rendered from. */
const STYLES = { lorelei, notionists, adventurer, bigSmile, micah, personas } as const;
export type DemoStyle = keyof typeof STYLES;
export type DemoDataset = 'faces' | DemoStyle;
export const DEMO_STYLES = Object.keys(STYLES) as DemoStyle[];

export const DEMO_DATASETS: Record<DemoDataset, { license: string; source: string }> = {
  faces: { license: 'Apache-2.0', source: 'facesjs 5 (procedural cartoon people)' },
  lorelei: { license: 'CC0-1.0', source: 'DiceBear lorelei (Lisa Wischofsky)' },
  notionists: { license: 'CC0-1.0', source: 'DiceBear notionists (Zoish)' },
  adventurer: { license: 'CC BY 4.0', source: 'DiceBear adventurer (Lisa Wischofsky)' },
  bigSmile: { license: 'CC BY 4.0', source: 'DiceBear big-smile (Ashley Seo)' },
  micah: { license: 'CC BY 4.0', source: 'DiceBear micah (Micah Lanier)' },
  personas: { license: 'CC BY 4.0', source: 'DiceBear personas (Draftbit)' },
};

export function isDemoDataset(name: string): name is DemoDataset {
  return Object.hasOwn(DEMO_DATASETS, name);
}

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

/** One PRNG seed per (dataset seed, image index), so image i does not depend on the count. */
function imageSeed(datasetSeed: number, index: number): number {
  return Math.imul(datasetSeed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b);
}

function withSeededRandom<T>(random: () => number, f: () => T): T {
  const original = Math.random;
  Math.random = random;
  try {
    return f();
  } finally {
    Math.random = original;
  }
}

const uniform = (random: () => number, lo: number, hi: number) => lo + (hi - lo) * random();
const pick = <T>(random: () => number, list: readonly T[]): T => list[Math.floor(random() * list.length)];

// facesjs draws glasses for 1 in 10 people and accessories for 1 in 5; a GAN sees more of the
// accessory space at 1 in 4 each. The face mask and the sports eye-black hide the face: left out.
const GLASSES = [
  'glasses1-primary',
  'glasses1-secondary',
  'glasses2-black',
  'glasses2-primary',
  'glasses2-secondary',
];
const HEADWEAR = ['hat', 'hat2', 'hat3', 'headband-high', 'headband'];

/** A facesjs person with more accessory variety than generate()'s defaults, from `random`. */
function demoPerson(random: () => number): FaceConfig {
  // generate() draws men unless told otherwise: half the people are women.
  const gender = random() < 0.5 ? 'female' : 'male';
  const face = withSeededRandom(random, () => generate(undefined, { gender }));
  if (face.glasses.id === 'facemask') face.glasses.id = 'none';
  if (face.accessories.id === 'eye-black') face.accessories.id = 'none';
  if (face.glasses.id === 'none' && random() < 0.18) face.glasses.id = pick(random, GLASSES);
  if (face.accessories.id === 'none' && random() < 0.08) face.accessories.id = pick(random, HEADWEAR);
  // The shirt shows at the bottom of the frame; facesjs gives everyone the same team colours.
  face.teamColors = [randomHex(random), randomHex(random), randomHex(random)];
  return face;
}

const randomHex = (random: () => number) =>
  `#${Math.floor(random() * 0x1000000)
    .toString(16)
    .padStart(6, '0')}`;

/** A light background like a photo studio's or a room's, different for every person. */
function backgroundColour(random: () => number): string {
  const hue = Math.floor(random() * 360);
  const saturation = Math.floor(uniform(random, 10, 55));
  const lightness = Math.floor(uniform(random, 62, 92));
  return `hsl(${hue},${saturation}%,${lightness}%)`;
}

// The facesjs portrait is 400x600 with the head about x 25-375, y 100-500 and the eyes near
// y 310. This square puts the head in the middle of the frame with the eyes at about 45% of the
// height and the face about 60% of the width, like an aligned face dataset (FFHQ) crop.
const FRAME = { cx: 200, top: 60, size: 470 };

/** The facesjs person of image `index` of the faces set with seed `datasetSeed`. */
export function demoFacePerson(index: number, datasetSeed = 0): FaceConfig {
  return demoPerson(mulberry32(imageSeed(datasetSeed, index)));
}

/** The SVG of one facesjs person, framed like an aligned face with a small random pose. */
function faceSvg(random: () => number, pixels: number): string {
  const face = demoPerson(random);
  const scale = uniform(random, 0.93, 1.07); // face size in the frame, +-7%
  const size = FRAME.size / scale;
  const dx = uniform(random, -0.03, 0.03) * FRAME.size;
  const dy = uniform(random, -0.03, 0.03) * FRAME.size;
  const angle = uniform(random, -6, 6); // head roll in degrees
  const left = FRAME.cx - size / 2 + dx;
  const top = FRAME.top + (FRAME.size - size) / 2 + dy;
  const background = backgroundColour(random);
  const inner = faceToSvgString(face)
    .replace(/^<svg[^>]*>/, '')
    .replace(/<\/svg>\s*$/, '');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${pixels}" height="${pixels}" ` +
    `viewBox="${left} ${top} ${size} ${size}">` +
    `<rect x="${left - size}" y="${top - size}" width="${3 * size}" height="${3 * size}" fill="${background}"/>` +
    `<g transform="rotate(${angle.toFixed(3)} 200 310)">${inner}</g></svg>`
  );
}

const BACKGROUNDS = ['b6e3f4', 'c0aede', 'd1d4f9', 'ffd5dc', 'ffdfbf'];

/**
 * One image of `dataset` as a PNG at `resolution`: image `index` of the set with seed
 * `datasetSeed`. Seed 0 of a DiceBear style keeps the names the first demo used (demo-0, demo-1...).
 */
export async function renderDemoFace(
  dataset: DemoDataset,
  index: number,
  resolution: number,
  datasetSeed = 0,
): Promise<Buffer> {
  // SVGs are drawn at 4x (at least 256 px) and downsampled: thin lines keep their weight.
  const pixels = Math.max(256, 4 * resolution);
  let svg: string;
  if (dataset === 'faces') {
    svg = faceSvg(mulberry32(imageSeed(datasetSeed, index)), pixels);
  } else {
    const seed = datasetSeed === 0 ? `demo-${index}` : `demo-${datasetSeed}-${index}`;
    // DiceBear draws the head small in a bust: zoomed so that it fills the frame as the base's does.
    // Each style types the options of its own parts; the ones set here are common to every style.
    svg = createAvatar(STYLES[dataset] as Style<object>, {
      seed,
      size: pixels,
      backgroundColor: BACKGROUNDS,
      scale: 125,
      translateY: 6,
    }).toString();
  }
  return sharp(Buffer.from(svg))
    .flatten({ background: '#ffffff' })
    .resize(resolution, resolution, { kernel: 'lanczos3' })
    .png()
    .toBuffer();
}

export interface DemoDatasetOptions {
  /** The dataset's seed: the same seed gives the same images, byte for byte. */
  seed?: number;
  onProgress?: (done: number) => void;
}

/** Writes `count` images as 000000.png ... into `dir` (a dataset folder for training). */
export async function writeDemoDataset(
  dataset: DemoDataset,
  dir: string,
  count: number,
  resolution: number,
  { seed = 0, onProgress }: DemoDatasetOptions = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    await writeFile(
      join(dir, `${String(i).padStart(6, '0')}.png`),
      await renderDemoFace(dataset, i, resolution, seed),
    );
    onProgress?.(i + 1);
  }
  await writeFile(
    join(dir, 'LICENSE.txt'),
    `${DEMO_DATASETS[dataset].source}\nLicense: ${DEMO_DATASETS[dataset].license}\n` +
      `Images 0..${count - 1} of seed ${seed}, ${resolution}x${resolution}, rendered by facestyle src/demo/data.ts ` +
      `(facestyle demo data --set ${dataset} --seed ${seed} --count ${count} --res ${resolution})\n`,
  );
}
