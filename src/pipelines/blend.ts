// Layer swapping (Pinkney & Adler 2020, "Resolution Dependent GAN Interpolation"): synthesis
// blocks at resolution >= `layer` come from the `high` model, the rest (and by default the mapping
// network with w_avg) from the `low` model. Pure tensor selection: the result borrows the parents'
// tensors and copies nothing it does not change.
import { UserError } from '../errors.ts';
import type { CheckpointMeta, CheckpointToSave } from '../model/checkpoint/io.ts';
import type { ModelConfig } from '../model/config.ts';
import type { ParamStore } from '../model/params.ts';
import { tf } from '../model/tf.ts';

/**
 * texture: base structure with the style's colours and lines (the seed report's choice: base = low).
 * structure: the style's shapes with the base's textures (Toonify's choice: style = low).
 */
export type BlendDirection = 'texture' | 'structure';

export interface BlendOptions {
  /** Swap resolution S: synthesis blocks b{r} with r >= S come from `high`. */
  layer: number;
  /**
   * Soft switch width in octaves of resolution; 0 or undefined = hard cut. The high model's weight
   * for block r is sigmoid((log2 r - log2 S + 1/2) / width): the switch point sits halfway between
   * block S/2 and block S, so the two blocks around it mirror each other around 50/50 and width -> 0
   * gives back the hard cut.
   */
  width?: number;
  /** Which parent supplies the mapping network and w_avg (default: low). */
  mapping?: 'low' | 'high';
}

export class BlendError extends UserError {
  override name = 'BlendError';
}

const BLOCK_PATTERN = /^synthesis\.b(\d+)\./;

/** Resolution of the synthesis block a tensor belongs to, or null for mapping tensors. */
export function blockResolution(name: string): number | null {
  const m = BLOCK_PATTERN.exec(name);
  return m ? Number(m[1]) : null;
}

/** Weight of the high model for a block at resolution `res`. */
export function highWeight(res: number, layer: number, width?: number): number {
  if (!width) return res >= layer ? 1 : 0;
  const x = Math.log2(res) - Math.log2(layer) + 0.5;
  return 1 / (1 + Math.exp(-x / width));
}

export function assertSameArchitecture(
  a: ParamStore,
  b: ParamStore,
  labels: [string, string] = ['low', 'high'],
): void {
  for (const [name, t] of a) {
    const other = b.get(name);
    if (!other)
      throw new BlendError(
        `cannot blend: tensor ${name} exists in the ${labels[0]} model but not in the ${labels[1]} model`,
        'Both models must share one architecture: fine-tune the style model from the base model.',
      );
    if (!tf.util.arraysEqual(t.shape, other.shape)) {
      throw new BlendError(
        `cannot blend: tensor ${name} has shape [${t.shape}] in the ${labels[0]} model but [${other.shape}] in the ${labels[1]} model`,
        'Both models must share one architecture: fine-tune the style model from the base model.',
      );
    }
  }
  for (const name of b.keys()) {
    if (!a.has(name))
      throw new BlendError(
        `cannot blend: tensor ${name} exists in the ${labels[1]} model but not in the ${labels[0]} model`,
      );
  }
}

export interface BlendResult {
  params: ParamStore;
  /** Tensors created by the blend (soft switch only); the rest are borrowed from the parents. */
  owned: tf.Tensor[];
}

export function blend(low: ParamStore, high: ParamStore, opts: BlendOptions): BlendResult {
  const { layer, width, mapping = 'low' } = opts;
  if (!Number.isInteger(Math.log2(layer)) || layer < 4) {
    throw new BlendError(`swap layer must be a power of two resolution (4, 8, 16, ...), got ${layer}`);
  }
  if (width !== undefined && (!(width >= 0) || !Number.isFinite(width))) {
    throw new BlendError(`blend width must be a non-negative number, got ${width}`);
  }
  assertSameArchitecture(low, high);
  const maxRes = Math.max(...[...low.keys()].map((n) => blockResolution(n) ?? 0));
  if (layer > maxRes) throw new BlendError(`swap layer ${layer} is above the model resolution ${maxRes}`);

  const params: ParamStore = new Map();
  const owned: tf.Tensor[] = [];
  for (const [name, lowT] of low) {
    const res = blockResolution(name);
    const highT = high.get(name)!;
    if (res === null) {
      params.set(name, mapping === 'low' ? lowT : highT);
      continue;
    }
    const y = highWeight(res, layer, width);
    if (y === 1) params.set(name, highT);
    else if (y === 0) params.set(name, lowT);
    else {
      const mixed = tf.tidy(() => tf.add(tf.mul(highT, y), tf.mul(lowT, 1 - y)));
      owned.push(mixed);
      params.set(name, mixed);
    }
  }
  return { params, owned };
}

/** Orders base and style into (low, high) for a direction. */
export function orderForDirection<T>(base: T, style: T, direction: BlendDirection): { low: T; high: T } {
  return direction === 'texture' ? { low: base, high: style } : { low: style, high: base };
}

export interface BlendCheckpointOptions extends BlendOptions {
  direction?: BlendDirection;
  name?: string;
}

export interface GeneratorSource {
  path: string;
  config: ModelConfig;
  meta: CheckpointMeta;
  params: ParamStore;
}

/**
 * Blends a base and a style checkpoint into a checkpoint of its own that records both parents, the
 * swap layer, width and direction. The caller owns `owned` (soft switch only) and must dispose it
 * with the result; every other tensor still belongs to the parents.
 */
export function blendCheckpoints(
  base: GeneratorSource,
  style: GeneratorSource,
  opts: BlendCheckpointOptions,
): { checkpoint: CheckpointToSave; owned: tf.Tensor[] } {
  const direction = opts.direction ?? 'texture';
  const { low, high } = orderForDirection(base, style, direction);
  const { params, owned } = blend(low.params, high.params, opts);
  const mappingFrom = (opts.mapping ?? 'low') === 'low' ? low : high;
  const checkpoint: CheckpointToSave = {
    config: { G: base.config.G },
    meta: {
      name: opts.name ?? `${base.meta.name}+${style.meta.name}@${opts.layer}`,
      kind: 'blend',
      parents: [base.path, style.path],
      createdAt: new Date().toISOString(),
      epoch: style.meta.epoch,
      extra: {
        base: base.meta.name,
        style: style.meta.name,
        styleEpoch: style.meta.epoch ?? null,
        layer: opts.layer,
        width: opts.width ?? 0,
        direction,
        mapping: mappingFrom === base ? 'base' : 'style',
      },
    },
    G_ema: params,
  };
  return { checkpoint, owned };
}
