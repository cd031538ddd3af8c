// The pictures that show what blending does, as the seed report shows it: base | style | blend
// columns for a set of seeds, and a matrix of snapshot epochs x swap layers from one set of seeds.
import { type RgbImage, tensorToRgb } from '../images/tensor-image.ts';
import type { GeneratorConfig } from '../model/config.ts';
import { Generator } from '../model/networks/generator.ts';
import type { ParamStore } from '../model/params.ts';
import { imagesPerPass, seedsToZ } from '../model/sampling.ts';
import type { Variation } from '../model/seeds.ts';
import { tf } from '../model/tf.ts';
import { type BlendDirection, blend, orderForDirection } from './blend.ts';
import type { WsRenderer } from './engine.ts';

export interface ShowcaseOptions {
  seeds: number[];
  /** The seeds are noise seeds of variations of this face. */
  variation?: Variation;
  psi?: number;
  direction?: BlendDirection;
  width?: number;
  /** Renders ws with a generator's params (default: tfjs on the active backend). */
  renderer?: WsRenderer;
}

/** The tfjs WsRenderer: synthesis in passes that fit the backend's memory. */
export async function renderWithTfjs(
  cfg: GeneratorConfig,
  params: ParamStore,
  ws: tf.Tensor3D,
): Promise<RgbImage[]> {
  const G = new Generator(cfg, params);
  const [n, numW, wDim] = ws.shape;
  const perPass = imagesPerPass(cfg, n);
  const images: RgbImage[] = [];
  for (let start = 0; start < n; start += perPass) {
    const count = Math.min(perPass, n - start);
    const img = tf.tidy(() =>
      G.synthesize(tf.slice(ws, [start, 0, 0], [count, numW, wDim]), { noiseMode: 'const' }),
    );
    try {
      images.push(...(await tensorToRgb(img)));
    } finally {
      img.dispose();
    }
  }
  return images;
}

/** ws for `seeds` through the mapping network a blend in `direction` would use (low's). */
function blendWs(
  cfg: GeneratorConfig,
  base: ParamStore,
  style: ParamStore,
  opts: ShowcaseOptions,
): tf.Tensor3D {
  const { low } = orderForDirection(base, style, opts.direction ?? 'texture');
  return tf.tidy(() =>
    new Generator(cfg, low).map(seedsToZ(opts.seeds, cfg.zDim, opts.variation), { psi: opts.psi ?? 1 }),
  );
}

/** Rows = seeds; columns = base, style, blend: every column rendered from the same ws. */
export async function blendComparison(
  cfg: GeneratorConfig,
  base: ParamStore,
  style: ParamStore,
  layer: number,
  opts: ShowcaseOptions,
): Promise<{ rows: RgbImage[][]; columnLabels: string[]; rowLabels: string[] }> {
  const ws = blendWs(cfg, base, style, opts);
  const render = opts.renderer ?? renderWithTfjs;
  const { low, high } = orderForDirection(base, style, opts.direction ?? 'texture');
  const blended = blend(low, high, { layer, width: opts.width });
  try {
    const columns = [
      await render(cfg, base, ws),
      await render(cfg, style, ws),
      await render(cfg, blended.params, ws),
    ];
    return {
      rows: opts.seeds.map((_, i) => columns.map((c) => c[i])),
      columnLabels: ['base', 'style', `blend ≥${layer}`],
      rowLabels: opts.seeds.map((s) => `seed ${s}`),
    };
  } finally {
    ws.dispose();
    for (const t of blended.owned) t.dispose();
  }
}

/**
 * Rows = style snapshots (e.g. by epoch), columns = the unblended style then each swap layer;
 * each cell holds the images of all seeds side by side. `labelCell`, when given, captions every
 * cell from its generator's parameters (e.g. how far it moved toward the style's images).
 */
export async function blendMatrix(
  cfg: GeneratorConfig,
  base: ParamStore,
  snapshots: Array<{ label: string; params: ParamStore }>,
  layers: number[],
  opts: ShowcaseOptions,
  labelCell?: (params: ParamStore) => Promise<string>,
): Promise<{ rows: RgbImage[][][]; columnLabels: string[]; rowLabels: string[]; cellLabels?: string[] }> {
  const rows: RgbImage[][][] = [];
  const cellLabels: string[] = [];
  const render = opts.renderer ?? renderWithTfjs;
  for (const snap of snapshots) {
    const ws = blendWs(cfg, base, snap.params, opts);
    try {
      const row: RgbImage[][] = [await render(cfg, base, ws), await render(cfg, snap.params, ws)];
      if (labelCell) cellLabels.push(await labelCell(base), await labelCell(snap.params));
      const { low, high } = orderForDirection(base, snap.params, opts.direction ?? 'texture');
      for (const layer of layers) {
        const blended = blend(low, high, { layer, width: opts.width });
        try {
          row.push(await render(cfg, blended.params, ws));
          if (labelCell) cellLabels.push(await labelCell(blended.params));
        } finally {
          for (const t of blended.owned) t.dispose();
        }
      }
      rows.push(row);
    } finally {
      ws.dispose();
    }
  }
  return {
    rows,
    columnLabels: ['base', 'style', ...layers.map((l) => `swap ≥${l}`)],
    rowLabels: snapshots.map((s) => s.label),
    ...(labelCell ? { cellLabels } : {}),
  };
}
