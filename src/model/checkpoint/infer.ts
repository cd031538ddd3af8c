// The ModelConfig of an official export (which carries none), inferred from its tensor shapes.
import {
  assertResolution,
  channelsAt,
  type DiscriminatorConfig,
  type GeneratorConfig,
  type ModelConfig,
  synthesisResolutions,
} from '../config.ts';
import { CheckpointError, type ConfigHints, formatShape, problem } from './format.ts';
import {
  checkShapesAgainstConfig,
  imageGeneratorGroup,
  type NetworkGroups,
  type NetworkTensors,
  splitByNetwork,
} from './tensors.ts';

// The official defaults for what shapes cannot show.
const DEFAULT_CONV_CLAMP = 256;
const DEFAULT_MBSTD_GROUP_SIZE = 4;
const MAPPING_LR_MULTIPLIER = 0.01;

function shapeReader(group: NetworkTensors<number[]>, source: string | undefined) {
  return (name: string, rank: number): number[] => {
    const shape = group.tensors.get(name);
    if (!shape) throw problem(source, `missing tensor ${group.prefix}${name}`);
    if (shape.length !== rank) {
      throw problem(
        source,
        `tensor ${group.prefix}${name} has shape ${formatShape(shape)}; expected rank ${rank}`,
      );
    }
    return shape;
  };
}

/** Resolution of the top block (`b{r}`), after checking every block name is a power of two. */
function topResolution(
  group: NetworkTensors<number[]>,
  blockPrefix: 'synthesis.b' | 'b',
  source: string | undefined,
): number {
  const pattern = blockPrefix === 'b' ? /^b(\d+)\./ : /^synthesis\.b(\d+)\./;
  let top = 0;
  for (const name of group.tensors.keys()) {
    const match = pattern.exec(name);
    if (!match) continue;
    const res = Number(match[1]);
    if (res < 4 || !Number.isInteger(Math.log2(res))) {
      throw problem(source, `block resolution ${res} (${group.prefix}${name}) is not a power of two`);
    }
    top = Math.max(top, res);
  }
  if (top === 0) throw problem(source, `has no ${group.prefix}${blockPrefix}{resolution} block tensors`);
  try {
    assertResolution(top);
  } catch (err) {
    throw problem(source, (err as Error).message);
  }
  return top;
}

/**
 * Finds a (channel_base, channel_max) pair for which min(floor(base / r), max) reproduces every
 * block's channel count. Saturated blocks only bound base from below; the others pin it to an
 * interval. Among the fitting bases, a power of two is preferred (as in every official config).
 */
export function inferChannelBaseMax(
  channelsByRes: Map<number, number>,
  label = 'channel counts',
): { channelBase: number; channelMax: number } {
  const channelMax = Math.max(...channelsByRes.values());
  let lower = 1;
  let upper = Number.POSITIVE_INFINITY;
  for (const [res, channels] of channelsByRes) {
    lower = Math.max(lower, channels * res);
    if (channels < channelMax) upper = Math.min(upper, (channels + 1) * res - 1);
  }
  const powerOfTwo = 2 ** Math.ceil(Math.log2(lower));
  const channelBase = powerOfTwo <= upper ? powerOfTwo : lower;
  for (const [res, channels] of channelsByRes) {
    if (channels < 1 || channelsAt({ channelBase, channelMax }, res) !== channels) {
      const listed = [...channelsByRes].map(([r, c]) => `${r}: ${c}`).join(', ');
      throw new CheckpointError(
        `${label} (${listed}) do not follow min(channel_base / resolution, channel_max), as StyleGAN2 requires`,
      );
    }
  }
  return { channelBase, channelMax };
}

function inferGenerator(
  group: NetworkTensors<number[]>,
  hints: ConfigHints,
  source: string | undefined,
): GeneratorConfig {
  const shapeOf = shapeReader(group, source);
  const resolution = topResolution(group, 'synthesis.b', source);
  let mappingLayers = 0;
  for (const name of group.tensors.keys()) {
    const match = /^mapping\.fc(\d+)\./.exec(name);
    if (match) mappingLayers = Math.max(mappingLayers, Number(match[1]) + 1);
  }
  const zDim = shapeOf('mapping.fc0.weight', 2)[1];
  const wDim = shapeOf(`mapping.fc${Math.max(mappingLayers - 1, 0)}.weight`, 2)[0];
  const channels = new Map<number, number>();
  for (const res of synthesisResolutions(resolution))
    channels.set(res, shapeOf(`synthesis.b${res}.conv1.weight`, 4)[0]);
  const imgChannels = shapeOf(`synthesis.b${resolution}.torgb.weight`, 4)[0];
  let base: { channelBase: number; channelMax: number };
  try {
    base = inferChannelBaseMax(channels, `${group.prefix}synthesis channel counts`);
  } catch (err) {
    throw problem(source, (err as Error).message);
  }
  return {
    resolution,
    zDim,
    wDim,
    mappingLayers,
    ...base,
    convClamp: hints.convClamp === undefined ? DEFAULT_CONV_CLAMP : hints.convClamp,
    imgChannels,
    mappingLrMultiplier: MAPPING_LR_MULTIPLIER,
  };
}

function inferDiscriminator(
  group: NetworkTensors<number[]>,
  hints: ConfigHints,
  source: string | undefined,
): DiscriminatorConfig {
  const shapeOf = shapeReader(group, source);
  const resolution = topResolution(group, 'b', source);
  const epilogueConv = shapeOf('b4.conv.weight', 4);
  const channels = new Map<number, number>([[4, epilogueConv[0]]]);
  for (const res of synthesisResolutions(resolution)) {
    if (res > 4) channels.set(res, shapeOf(`b${res}.conv0.weight`, 4)[0]);
  }
  const mbstdChannels = epilogueConv[1] - epilogueConv[0];
  if (mbstdChannels < 0) {
    throw problem(source, `tensor ${group.prefix}b4.conv.weight has fewer input than output channels`);
  }
  let base: { channelBase: number; channelMax: number };
  try {
    base = inferChannelBaseMax(channels, `${group.prefix}block channel counts`);
  } catch (err) {
    throw problem(source, (err as Error).message);
  }
  return {
    resolution,
    ...base,
    convClamp: hints.convClamp === undefined ? DEFAULT_CONV_CLAMP : hints.convClamp,
    imgChannels: shapeOf(`b${resolution}.fromrgb.weight`, 4)[1],
    mbstdGroupSize: hints.mbstdGroupSize ?? DEFAULT_MBSTD_GROUP_SIZE,
    mbstdChannels,
  };
}

export function inferConfigOfGroups(
  groups: NetworkGroups<number[]>,
  hints: ConfigHints,
  source: string | undefined,
): ModelConfig {
  const config: ModelConfig = { G: inferGenerator(imageGeneratorGroup(groups, source), hints, source) };
  const d = groups.get('D');
  if (d) {
    config.D = inferDiscriminator(d, hints, source);
    if (config.D.resolution !== config.G.resolution || config.D.imgChannels !== config.G.imgChannels) {
      throw problem(
        source,
        `discriminator (${config.D.resolution}px, ${config.D.imgChannels} channels) does not match the generator (${config.G.resolution}px, ${config.G.imgChannels} channels)`,
      );
    }
  }
  checkShapesAgainstConfig(groups, config, source);
  return config;
}

/**
 * Infers the model configuration from official-name PyTorch shapes (prefixed with G_ema./G./D.
 * or bare) and checks every tensor against it. Group size and conv clamp cannot be seen in shapes:
 * they come from `hints`, else the official defaults (4 and 256).
 */
export function inferConfig(shapes: Map<string, number[]>, hints: ConfigHints = {}): ModelConfig {
  return inferConfigOfGroups(splitByNetwork(shapes), hints, undefined);
}
