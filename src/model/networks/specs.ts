// The parameters of the StyleGAN2 networks: every tensor's official NVlabs state_dict name (without
// the network prefix), its shape in our TensorFlow.js layouts and its initialisation, in official
// order. This is the one declaration of the parameter set: init.ts builds fresh networks from it,
// the checkpoint format derives its PyTorch-layout tensor table from it (checkpoint/tensors.ts), and
// the network classes read exactly these parameters (test/networks.test.ts checks that).
//
// No TensorFlow.js here: the bot validates checkpoint files against this list when it lists models,
// and must not load tfjs to do so.
import {
  channelsAt,
  type DiscriminatorConfig,
  type GeneratorConfig,
  synthesisResolutions,
} from '../config.ts';

export type Init =
  | 'randn'
  | 'zeros'
  | 'ones'
  | { constant: number }
  | { randnScale: number }
  | { filter: number[] };

export interface ParamSpec {
  name: string;
  shape: number[];
  init: Init;
  /** Buffers are state that training does not optimise (noise_const, w_avg, resample filters). */
  buffer?: boolean;
}

/**
 * The `resample_filter` buffer every official block and conv layer carries (setup_filter of
 * [1, 3, 3, 1]: the normalised outer product). Kept so a ParamStore mirrors the official state_dict;
 * the ops use the same fixed filter without reading it.
 */
export function resampleFilterSpec(prefix: string): ParamSpec {
  return { name: `${prefix}resample_filter`, shape: [4, 4], init: { filter: [1, 3, 3, 1] }, buffer: true };
}

export interface FullyConnectedShape {
  lrMultiplier?: number;
  biasInit?: number;
}

/** Weight [in, out] initialised randn / lr_multiplier (scaled back at run time), bias constant. */
export function fullyConnectedSpecs(
  prefix: string,
  inFeatures: number,
  outFeatures: number,
  { lrMultiplier = 1, biasInit = 0 }: FullyConnectedShape = {},
): ParamSpec[] {
  return [
    { name: `${prefix}weight`, shape: [inFeatures, outFeatures], init: { randnScale: 1 / lrMultiplier } },
    { name: `${prefix}bias`, shape: [outFeatures], init: { constant: biasInit } },
  ];
}

/** Weight [k, k, in, out], optional bias, and the resample filter every official Conv2dLayer has. */
export function conv2dSpecs(
  prefix: string,
  inChannels: number,
  outChannels: number,
  kernelSize: number,
  { bias = true }: { bias?: boolean } = {},
): ParamSpec[] {
  const specs: ParamSpec[] = [
    { name: `${prefix}weight`, shape: [kernelSize, kernelSize, inChannels, outChannels], init: 'randn' },
  ];
  if (bias) specs.push({ name: `${prefix}bias`, shape: [outChannels], init: 'zeros' });
  specs.push(resampleFilterSpec(prefix));
  return specs;
}

/** The style affine of a modulated layer: w -> one scale per input channel, bias initialised to 1. */
function affineSpecs(prefix: string, wDim: number, inChannels: number): ParamSpec[] {
  return fullyConnectedSpecs(`${prefix}affine.`, wDim, inChannels, { biasInit: 1 });
}

export function synthesisLayerSpecs(
  prefix: string,
  inChannels: number,
  outChannels: number,
  wDim: number,
  resolution: number,
): ParamSpec[] {
  return [
    ...affineSpecs(prefix, wDim, inChannels),
    { name: `${prefix}weight`, shape: [3, 3, inChannels, outChannels], init: 'randn' },
    { name: `${prefix}bias`, shape: [outChannels], init: 'zeros' },
    { name: `${prefix}noise_const`, shape: [resolution, resolution], init: 'randn', buffer: true },
    { name: `${prefix}noise_strength`, shape: [], init: 'zeros' },
    resampleFilterSpec(prefix),
  ];
}

export function toRgbSpecs(
  prefix: string,
  inChannels: number,
  outChannels: number,
  wDim: number,
): ParamSpec[] {
  return [
    ...affineSpecs(prefix, wDim, inChannels),
    { name: `${prefix}weight`, shape: [1, 1, inChannels, outChannels], init: 'randn' },
    { name: `${prefix}bias`, shape: [outChannels], init: 'zeros' },
  ];
}

/** Input and output feature counts of each mapping FC layer. */
export function mappingFeatures(cfg: GeneratorConfig): Array<{ in: number; out: number }> {
  return Array.from({ length: cfg.mappingLayers }, (_, i) => ({
    in: i === 0 ? cfg.zDim : cfg.wDim,
    out: cfg.wDim,
  }));
}

export function mappingSpecs(cfg: GeneratorConfig): ParamSpec[] {
  return [
    ...mappingFeatures(cfg).flatMap((f, i) =>
      fullyConnectedSpecs(`mapping.fc${i}.`, f.in, f.out, { lrMultiplier: cfg.mappingLrMultiplier }),
    ),
    { name: 'mapping.w_avg', shape: [cfg.wDim], init: 'zeros', buffer: true },
  ];
}

export interface SynthesisBlockShape {
  resolution: number;
  /** 0 for the 4x4 block, which starts from its learned constant instead of an input. */
  inChannels: number;
  outChannels: number;
}

/** The `skip` synthesis network's blocks, lowest resolution first. */
export function synthesisBlocks(cfg: GeneratorConfig): SynthesisBlockShape[] {
  return synthesisResolutions(cfg.resolution).map((resolution) => ({
    resolution,
    inChannels: resolution === 4 ? 0 : channelsAt(cfg, resolution / 2),
    outChannels: channelsAt(cfg, resolution),
  }));
}

export function synthesisBlockSpecs(cfg: GeneratorConfig, block: SynthesisBlockShape): ParamSpec[] {
  const { resolution: res, inChannels, outChannels } = block;
  const prefix = `synthesis.b${res}.`;
  const specs: ParamSpec[] = [];
  if (inChannels === 0) specs.push({ name: `${prefix}const`, shape: [res, res, outChannels], init: 'randn' });
  else specs.push(...synthesisLayerSpecs(`${prefix}conv0.`, inChannels, outChannels, cfg.wDim, res));
  specs.push(
    ...synthesisLayerSpecs(`${prefix}conv1.`, outChannels, outChannels, cfg.wDim, res),
    ...toRgbSpecs(`${prefix}torgb.`, outChannels, cfg.imgChannels, cfg.wDim),
    resampleFilterSpec(prefix),
  );
  return specs;
}

/** The generator (mapping + `skip` synthesis, unconditional). */
export function generatorSpecs(cfg: GeneratorConfig): ParamSpec[] {
  return [...mappingSpecs(cfg), ...synthesisBlocks(cfg).flatMap((b) => synthesisBlockSpecs(cfg, b))];
}

export interface DiscriminatorBlockShape {
  resolution: number;
  /** 0 for the top block, which reads the image through its fromrgb layer. */
  inChannels: number;
  tmpChannels: number;
  outChannels: number;
}

/** The `resnet` discriminator's blocks above 4x4, highest resolution first. */
export function discriminatorBlocks(cfg: DiscriminatorConfig): DiscriminatorBlockShape[] {
  return synthesisResolutions(cfg.resolution)
    .filter((r) => r > 4)
    .reverse()
    .map((resolution) => ({
      resolution,
      inChannels: resolution < cfg.resolution ? channelsAt(cfg, resolution) : 0,
      tmpChannels: channelsAt(cfg, resolution),
      outChannels: channelsAt(cfg, resolution / 2),
    }));
}

export function discriminatorBlockSpecs(
  cfg: DiscriminatorConfig,
  block: DiscriminatorBlockShape,
): ParamSpec[] {
  const { inChannels, tmpChannels, outChannels } = block;
  const prefix = `b${block.resolution}.`;
  const convInChannels = inChannels === 0 ? tmpChannels : inChannels;
  return [
    ...(inChannels === 0 ? conv2dSpecs(`${prefix}fromrgb.`, cfg.imgChannels, tmpChannels, 1) : []),
    ...conv2dSpecs(`${prefix}conv0.`, convInChannels, tmpChannels, 3),
    ...conv2dSpecs(`${prefix}conv1.`, tmpChannels, outChannels, 3),
    ...conv2dSpecs(`${prefix}skip.`, convInChannels, outChannels, 1, { bias: false }),
    resampleFilterSpec(prefix),
  ];
}

/** The 4x4 head: conv over features + minibatch-std channels, FC, one-logit output FC. */
export function discriminatorEpilogueSpecs(cfg: DiscriminatorConfig): ParamSpec[] {
  const channels = channelsAt(cfg, 4);
  return [
    ...conv2dSpecs('b4.conv.', channels + cfg.mbstdChannels, channels, 3),
    ...fullyConnectedSpecs('b4.fc.', channels * 16, channels),
    ...fullyConnectedSpecs('b4.out.', channels, 1),
  ];
}

/** The discriminator (`resnet`, unconditional). */
export function discriminatorSpecs(cfg: DiscriminatorConfig): ParamSpec[] {
  return [
    ...discriminatorBlocks(cfg).flatMap((b) => discriminatorBlockSpecs(cfg, b)),
    ...discriminatorEpilogueSpecs(cfg),
  ];
}

/** Names of the buffers (state that is copied, not optimised) among `specs`. */
export function bufferNames(specs: ParamSpec[]): Set<string> {
  return new Set(specs.filter((s) => s.buffer).map((s) => s.name));
}
