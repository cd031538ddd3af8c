// Architecture hyperparameters in one place, named as in NVlabs' networks_stylegan2.py.

export interface GeneratorConfig {
  /** Output resolution, a power of two from 8 to 1024. */
  resolution: number;
  zDim: number;
  wDim: number;
  /** Number of FC layers in the mapping network. */
  mappingLayers: number;
  channelBase: number;
  channelMax: number;
  /** Clamp for conv outputs (official: 256); null disables. */
  convClamp: number | null;
  imgChannels: number;
  /** Mapping network learning-rate multiplier (equalised lr gain). */
  mappingLrMultiplier: number;
}

export interface DiscriminatorConfig {
  resolution: number;
  channelBase: number;
  channelMax: number;
  convClamp: number | null;
  imgChannels: number;
  /** Minibatch-std group size (official default 4; paper256 uses 8). */
  mbstdGroupSize: number;
  mbstdChannels: number;
}

/** Per-pixel noise of the synthesis layers: random: fresh N(0,1) per call; const: the stored
 * noise_const buffers (reproducible images); none: no noise. */
export const NOISE_MODES = ['const', 'random', 'none'] as const;
export type NoiseMode = (typeof NOISE_MODES)[number];

export interface ModelConfig {
  G: GeneratorConfig;
  /** Absent for generator-only checkpoints (blends, exported G_ema). */
  D?: DiscriminatorConfig;
}

export function assertResolution(resolution: number): void {
  const log2 = Math.log2(resolution);
  if (!Number.isInteger(log2) || resolution < 8 || resolution > 1024) {
    throw new RangeError(`resolution must be a power of two from 8 to 1024, got ${resolution}`);
  }
}

/** Channels of the feature maps at resolution `res`: min(channel_base / res, channel_max). */
export function channelsAt(cfg: { channelBase: number; channelMax: number }, res: number): number {
  return Math.min(Math.floor(cfg.channelBase / res), cfg.channelMax);
}

/** Resolutions of the synthesis blocks, 4 .. resolution. */
export function synthesisResolutions(resolution: number): number[] {
  assertResolution(resolution);
  const out: number[] = [];
  for (let r = 4; r <= resolution; r *= 2) out.push(r);
  return out;
}

/** Number of w vectors the synthesis network consumes: 2 log2(res) - 2. */
export function numWs(resolution: number): number {
  return 2 * Math.log2(resolution) - 2;
}

export function defaultGeneratorConfig(overrides: Partial<GeneratorConfig> = {}): GeneratorConfig {
  const cfg: GeneratorConfig = {
    resolution: 256,
    zDim: 512,
    wDim: 512,
    mappingLayers: 8,
    channelBase: 16384,
    channelMax: 512,
    convClamp: 256,
    imgChannels: 3,
    mappingLrMultiplier: 0.01,
    ...overrides,
  };
  assertResolution(cfg.resolution);
  return cfg;
}

export function defaultDiscriminatorConfig(
  overrides: Partial<DiscriminatorConfig> = {},
): DiscriminatorConfig {
  const cfg: DiscriminatorConfig = {
    resolution: 256,
    channelBase: 16384,
    channelMax: 512,
    convClamp: 256,
    imgChannels: 3,
    mbstdGroupSize: 4,
    mbstdChannels: 1,
    ...overrides,
  };
  assertResolution(cfg.resolution);
  return cfg;
}

/** The paper256 configuration of stylegan2-ada-pytorch (FFHQ 256x256 transfer source). */
export function paper256Config(): ModelConfig {
  return {
    G: defaultGeneratorConfig(),
    D: defaultDiscriminatorConfig({ mbstdGroupSize: 8 }),
  };
}
