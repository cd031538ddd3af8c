// Checkpoints are safetensors files holding up to three networks (G_ema: the generator that makes
// images, G: the training generator, D: the discriminator) under the official NVlabs
// stylegan2-ada-pytorch state_dict names with a network prefix, in PyTorch layouts, so official
// weights load by name and our files load in the official tools. Our own files add `__metadata__`
// with the ModelConfig and a CheckpointMeta; files without it (plain official exports) load too,
// with the config inferred from the tensor shapes.
//
// This module reads and validates the format without TensorFlow.js, so processes that only list
// models (the bot) never load tfjs; checkpoint.ts adds loading and saving tensors.
import { stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { UserError } from '../../errors.ts';
import {
  assertResolution,
  channelsAt,
  type DiscriminatorConfig,
  type GeneratorConfig,
  type ModelConfig,
  synthesisResolutions,
} from '../config.ts';
import type { ParamStore } from '../params.ts';
import {
  type FloatWriteDType,
  type SafetensorsDType,
  SafetensorsError,
  SafetensorsReader,
  type TensorEntry,
} from './safetensors.ts';

export type NetworkName = 'G_ema' | 'G' | 'D';
export const NETWORK_NAMES: readonly NetworkName[] = ['G_ema', 'G', 'D'];

export const CHECKPOINT_KINDS = ['base', 'finetune', 'blend', 'import', 'demo'] as const;
export type CheckpointKind = (typeof CHECKPOINT_KINDS)[number];

export interface CheckpointMeta {
  name: string;
  kind: CheckpointKind;
  /** The checkpoint this one was trained from. */
  parent?: string;
  /** Blends: the checkpoints that were mixed. */
  parents?: string[];
  datasetId?: string;
  epoch?: number;
  kimg?: number;
  /** ADA augmentation probability when the checkpoint was written. */
  augmentP?: number;
  losses?: Record<string, number>;
  /** Quality scores of the generator (KID against image sets); see src/pipelines/score. */
  scores?: ModelScore[];
  /** ISO 8601 time. */
  createdAt: string;
  extra?: Record<string, unknown>;
}

/** KID of the generator's images against an image set, lower is better (docs/score.md). */
export interface ModelScore {
  /** The score's name, after its feature network (e.g. "KID-nsfwMNv2"): comparable only within one name. */
  metric: string;
  /** What the images were compared with: a training set's content id (datasetId), or a path. */
  against: string;
  kid: number;
  kidStd: number;
  numReal: number;
  numFake: number;
  psi: number;
}

export interface Networks {
  G_ema?: ParamStore;
  G?: ParamStore;
  D?: ParamStore;
}

export interface Checkpoint extends Networks {
  path: string;
  config: ModelConfig;
  meta: CheckpointMeta;
}

export interface CheckpointToSave extends Networks {
  config: ModelConfig;
  meta: CheckpointMeta;
}

export interface TensorInfo {
  /** Full name as stored, network prefix included. */
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
}

export interface CheckpointInfo {
  path: string;
  config: ModelConfig;
  meta: CheckpointMeta;
  /** 'facestyle' when the file carries our metadata; 'official' when the config was inferred. */
  format: 'facestyle' | 'official';
  networks: NetworkName[];
  tensors: TensorInfo[];
  fileBytes: number;
}

/** What tensor shapes cannot tell: taken from file metadata when present. */
export interface ConfigHints {
  mbstdGroupSize?: number;
  convClamp?: number | null;
}

export interface LoadOptions {
  /** Networks to load when the file has them (default: all). The config always covers the whole file. */
  networks?: NetworkName[];
}

export interface SaveOptions {
  /**
   * Storage type for weights (rank >= 2). Biases, scalars and the buffers that must reproduce
   * exactly (resample filters, w_avg, constant noise) always stay F32: they are under 1% of the bytes.
   */
  dtype?: FloatWriteDType;
}

export const CHECKPOINT_FORMAT = 'facestyle-checkpoint';
export const CHECKPOINT_VERSION = '1';

const DEFAULT_CONV_CLAMP = 256;
const DEFAULT_MBSTD_GROUP_SIZE = 4;
const MAPPING_LR_MULTIPLIER = 0.01;
const RESAMPLE_FILTER_SHAPE = [4, 4];
const FLOAT_DTYPES: ReadonlySet<SafetensorsDType> = new Set(['F32', 'F16', 'BF16', 'F64']);
export const EXACT_BUFFER = /(^|\.)(resample_filter|noise_const|w_avg)$/;

/** A checkpoint that cannot be read, written or used; the message names the file and the problem. */
export class CheckpointError extends UserError {
  override name = 'CheckpointError';
  constructor(message: string, hint?: string, cause?: unknown) {
    super(message, hint);
    if (cause !== undefined) this.cause = cause;
  }
}

function problem(source: string | undefined, message: string, hint?: string): CheckpointError {
  return new CheckpointError(source ? `${source}: ${message}` : message, hint);
}

export function listNames(names: string[], limit = 5): string {
  const shown = names.slice(0, limit).join(', ');
  return names.length > limit ? `${shown} and ${names.length - limit} more` : shown;
}

export function formatShape(shape: number[]): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

// ---------------------------------------------------------------------------------------------
// The official tensor set

function addSynthesisLayer(
  shapes: Map<string, number[]>,
  name: string,
  inChannels: number,
  outChannels: number,
  res: number,
  wDim: number,
): void {
  shapes.set(`${name}.affine.weight`, [inChannels, wDim]);
  shapes.set(`${name}.affine.bias`, [inChannels]);
  shapes.set(`${name}.weight`, [outChannels, inChannels, 3, 3]);
  shapes.set(`${name}.bias`, [outChannels]);
  shapes.set(`${name}.noise_const`, [res, res]);
  shapes.set(`${name}.noise_strength`, []);
  shapes.set(`${name}.resample_filter`, RESAMPLE_FILTER_SHAPE);
}

/**
 * Every tensor of an official StyleGAN2 generator (`skip` architecture, unconditional) with its
 * PyTorch shape, keyed by name without the network prefix.
 */
export function generatorTorchShapes(cfg: GeneratorConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (let i = 0; i < cfg.mappingLayers; i++) {
    shapes.set(`mapping.fc${i}.weight`, [cfg.wDim, i === 0 ? cfg.zDim : cfg.wDim]);
    shapes.set(`mapping.fc${i}.bias`, [cfg.wDim]);
  }
  shapes.set('mapping.w_avg', [cfg.wDim]);
  for (const res of synthesisResolutions(cfg.resolution)) {
    const block = `synthesis.b${res}`;
    const channels = channelsAt(cfg, res);
    if (res === 4) shapes.set(`${block}.const`, [channels, 4, 4]);
    else addSynthesisLayer(shapes, `${block}.conv0`, channelsAt(cfg, res / 2), channels, res, cfg.wDim);
    addSynthesisLayer(shapes, `${block}.conv1`, channels, channels, res, cfg.wDim);
    shapes.set(`${block}.torgb.affine.weight`, [channels, cfg.wDim]);
    shapes.set(`${block}.torgb.affine.bias`, [channels]);
    shapes.set(`${block}.torgb.weight`, [cfg.imgChannels, channels, 1, 1]);
    shapes.set(`${block}.torgb.bias`, [cfg.imgChannels]);
    shapes.set(`${block}.resample_filter`, RESAMPLE_FILTER_SHAPE);
  }
  return shapes;
}

/**
 * Every tensor of an official StyleGAN2 discriminator (`resnet` architecture, unconditional) with
 * its PyTorch shape, keyed by name without the network prefix.
 */
export function discriminatorTorchShapes(cfg: DiscriminatorConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const conv = (name: string, shape: number[], bias: boolean) => {
    shapes.set(`${name}.weight`, shape);
    if (bias) shapes.set(`${name}.bias`, [shape[0]]);
    shapes.set(`${name}.resample_filter`, RESAMPLE_FILTER_SHAPE);
  };
  for (const res of synthesisResolutions(cfg.resolution).reverse()) {
    if (res === 4) break;
    const block = `b${res}`;
    const tmp = channelsAt(cfg, res);
    const out = channelsAt(cfg, res / 2);
    if (res === cfg.resolution) conv(`${block}.fromrgb`, [tmp, cfg.imgChannels, 1, 1], true);
    conv(`${block}.conv0`, [tmp, tmp, 3, 3], true);
    conv(`${block}.conv1`, [out, tmp, 3, 3], true);
    conv(`${block}.skip`, [out, tmp, 1, 1], false);
    shapes.set(`${block}.resample_filter`, RESAMPLE_FILTER_SHAPE);
  }
  const c4 = channelsAt(cfg, 4);
  conv('b4.conv', [c4, c4 + cfg.mbstdChannels, 3, 3], true);
  shapes.set('b4.fc.weight', [c4, c4 * 16]);
  shapes.set('b4.fc.bias', [c4]);
  shapes.set('b4.out.weight', [1, c4]);
  shapes.set('b4.out.bias', [1]);
  return shapes;
}

// ---------------------------------------------------------------------------------------------
// Names -> networks

export interface NetworkTensors<T> {
  /** Prefix the names carry in the file ('G_ema.', 'G.', 'D.', or '' for a bare state_dict). */
  prefix: string;
  /** Keyed by name without the prefix. */
  tensors: Map<string, T>;
}

type NetworkGroups<T> = Map<NetworkName, NetworkTensors<T>>;

const BARE_GENERATOR_NAME = /^(mapping|synthesis)\./;
const BARE_DISCRIMINATOR_NAME = /^b\d+\./;

function rejectUnsupportedVariants(names: string[], source: string | undefined): void {
  const conditional = names.find((n) => /(^|\.)mapping\.embed\./.test(n));
  if (conditional) {
    throw problem(
      source,
      `conditional models (c_dim>0) are not supported (found ${conditional})`,
      'use an unconditional StyleGAN2 checkpoint',
    );
  }
  const alias = names.find((n) => /(^|\.)synthesis\.(input\.|L\d+_)/.test(n));
  if (alias) {
    throw problem(
      source,
      `StyleGAN3 (alias-free) checkpoints are not supported (found ${alias})`,
      'use a StyleGAN2 checkpoint (stylegan2-ada-pytorch, or stylegan3 with --cfg=stylegan2)',
    );
  }
  const rosinality = names.find((n) =>
    /^(g_ema|g|d)\.|(^|\.)(style\.\d+\.|convs\.\d+\.|to_rgbs\.\d+\.)/.test(n),
  );
  if (rosinality) {
    throw problem(
      source,
      `rosinality/stylegan2-pytorch tensor names are not supported (found ${rosinality})`,
      'import it first: facestyle import <file> --out checkpoints/NAME.safetensors',
    );
  }
}

/**
 * Groups official names by network. Bare names (a state_dict saved without prefix) go to G_ema
 * when they are generator names (an exported generator is almost always the EMA one) and to D
 * when they are discriminator block names.
 */
export function splitByNetwork<T>(named: Map<string, T>, source?: string): NetworkGroups<T> {
  rejectUnsupportedVariants([...named.keys()], source);
  const groups: NetworkGroups<T> = new Map();
  const unknown: string[] = [];
  for (const [fullName, value] of named) {
    const head = fullName.slice(0, fullName.indexOf('.'));
    let network: NetworkName;
    let prefix = '';
    if (head === 'G_ema' || head === 'G' || head === 'D') {
      network = head;
      prefix = `${head}.`;
    } else if (BARE_GENERATOR_NAME.test(fullName)) {
      network = 'G_ema';
    } else if (BARE_DISCRIMINATOR_NAME.test(fullName)) {
      network = 'D';
    } else {
      unknown.push(fullName);
      continue;
    }
    let group = groups.get(network);
    if (!group) {
      group = { prefix, tensors: new Map() };
      groups.set(network, group);
    } else if (group.prefix !== prefix) {
      throw problem(source, `mixes prefixed and bare names for ${network} (${fullName})`);
    }
    group.tensors.set(fullName.slice(prefix.length), value);
  }
  if (unknown.length > 0) {
    throw problem(
      source,
      `unexpected tensor${unknown.length > 1 ? 's' : ''} ${listNames(unknown)}`,
      'expected official StyleGAN2 names such as G_ema.synthesis.b4.const, G.mapping.fc0.weight or D.b4.out.weight',
    );
  }
  return groups;
}

function mapGroups<T, U>(groups: NetworkGroups<T>, f: (value: T) => U): NetworkGroups<U> {
  const out: NetworkGroups<U> = new Map();
  for (const [network, group] of groups) {
    out.set(network, {
      prefix: group.prefix,
      tensors: new Map([...group.tensors].map(([n, v]) => [n, f(v)])),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Config inference

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

function compareShapes(
  group: NetworkTensors<number[]>,
  expected: Map<string, number[]>,
  source: string | undefined,
): void {
  const missing = [...expected.keys()].filter((name) => !group.tensors.has(name));
  if (missing.length > 0) {
    throw problem(
      source,
      `missing tensor${missing.length > 1 ? 's' : ''} ${listNames(missing.map((n) => group.prefix + n))}`,
      'the file is incomplete or holds a different StyleGAN2 variant',
    );
  }
  for (const [name, shape] of expected) {
    const actual = group.tensors.get(name)!;
    if (!sameShape(actual, shape)) {
      throw problem(
        source,
        `tensor ${group.prefix}${name} has shape ${formatShape(actual)} but the model needs ${formatShape(shape)}`,
      );
    }
  }
  const unexpected = [...group.tensors.keys()].filter((name) => !expected.has(name));
  if (unexpected.length > 0) {
    throw problem(
      source,
      `unexpected tensor${unexpected.length > 1 ? 's' : ''} ${listNames(unexpected.map((n) => group.prefix + n))}`,
      'only the official StyleGAN2 architectures are supported: generator "skip", discriminator "resnet"',
    );
  }
}

function imageGeneratorGroup<T>(groups: NetworkGroups<T>, source: string | undefined): NetworkTensors<T> {
  const group = groups.get('G_ema') ?? groups.get('G');
  if (!group) {
    throw problem(
      source,
      'has no generator tensors (G_ema.* or G.*)',
      'a discriminator alone cannot make images',
    );
  }
  return group;
}

/** Checks every network in the file against the tensor set `config` implies. */
function checkShapesAgainstConfig(
  groups: NetworkGroups<number[]>,
  config: ModelConfig,
  source: string | undefined,
): void {
  imageGeneratorGroup(groups, source);
  for (const [network, group] of groups) {
    if (network === 'D') {
      if (!config.D) throw problem(source, 'has discriminator tensors but its config has no D section');
      compareShapes(group, discriminatorTorchShapes(config.D), source);
    } else {
      compareShapes(group, generatorTorchShapes(config.G), source);
    }
  }
}

function inferConfigOfGroups(
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

// ---------------------------------------------------------------------------------------------
// Metadata

function isPositiveInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readFields<K extends string>(
  raw: unknown,
  what: string,
  fields: Record<K, (v: unknown) => boolean>,
  source: string | undefined,
): Record<K, unknown> {
  if (!isPlainObject(raw)) throw problem(source, `${what} is not an object`);
  for (const [key, valid] of Object.entries(fields) as Array<[K, (v: unknown) => boolean]>) {
    if (!valid(raw[key]))
      throw problem(source, `${what}.${key} is missing or invalid (${JSON.stringify(raw[key])})`);
  }
  return raw as Record<K, unknown>;
}

const optional =
  (check: (v: unknown) => boolean) =>
  (v: unknown): boolean =>
    v === undefined || check(v);
const isString = (v: unknown) => typeof v === 'string';

const isModelScore = (v: unknown): v is ModelScore =>
  isPlainObject(v) &&
  isString(v.metric) &&
  isString(v.against) &&
  ['kid', 'kidStd', 'numReal', 'numFake', 'psi'].every((k) => isFiniteNumber(v[k]));

const isConvClamp = (v: unknown) => v === null || (isFiniteNumber(v) && v > 0);

/** Validates a ModelConfig (from file metadata or a caller) and returns a copy with only known fields. */
export function parseModelConfig(raw: unknown, source?: string): ModelConfig {
  const root = readFields(raw, 'config', { G: isPlainObject, D: optional(isPlainObject) }, source);
  const g = readFields(
    root.G,
    'config.G',
    {
      resolution: isPositiveInteger,
      zDim: isPositiveInteger,
      wDim: isPositiveInteger,
      mappingLayers: isPositiveInteger,
      channelBase: isPositiveInteger,
      channelMax: isPositiveInteger,
      convClamp: isConvClamp,
      imgChannels: isPositiveInteger,
      mappingLrMultiplier: (v) => isFiniteNumber(v) && v > 0,
    },
    source,
  ) as unknown as GeneratorConfig;
  const config: ModelConfig = {
    G: {
      resolution: g.resolution,
      zDim: g.zDim,
      wDim: g.wDim,
      mappingLayers: g.mappingLayers,
      channelBase: g.channelBase,
      channelMax: g.channelMax,
      convClamp: g.convClamp,
      imgChannels: g.imgChannels,
      mappingLrMultiplier: g.mappingLrMultiplier,
    },
  };
  if (root.D !== undefined) {
    const d = readFields(
      root.D,
      'config.D',
      {
        resolution: isPositiveInteger,
        channelBase: isPositiveInteger,
        channelMax: isPositiveInteger,
        convClamp: isConvClamp,
        imgChannels: isPositiveInteger,
        mbstdGroupSize: isPositiveInteger,
        mbstdChannels: (v) => v === 0 || isPositiveInteger(v),
      },
      source,
    ) as unknown as DiscriminatorConfig;
    config.D = {
      resolution: d.resolution,
      channelBase: d.channelBase,
      channelMax: d.channelMax,
      convClamp: d.convClamp,
      imgChannels: d.imgChannels,
      mbstdGroupSize: d.mbstdGroupSize,
      mbstdChannels: d.mbstdChannels,
    };
  }
  for (const res of [config.G.resolution, config.D?.resolution]) {
    if (res === undefined) continue;
    try {
      assertResolution(res);
    } catch (err) {
      throw problem(source, `config: ${(err as Error).message}`);
    }
  }
  return config;
}

/** Validates a CheckpointMeta and returns a copy with only known fields. */
export function parseCheckpointMeta(raw: unknown, source?: string): CheckpointMeta {
  const m = readFields(
    raw,
    'meta',
    {
      name: (v) => typeof v === 'string' && v.length > 0,
      kind: (v) => (CHECKPOINT_KINDS as readonly unknown[]).includes(v),
      createdAt: (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v)),
      parent: optional(isString),
      parents: optional((v) => Array.isArray(v) && v.every(isString)),
      datasetId: optional(isString),
      epoch: optional(isFiniteNumber),
      kimg: optional(isFiniteNumber),
      augmentP: optional(isFiniteNumber),
      losses: optional((v) => isPlainObject(v) && Object.values(v).every(isFiniteNumber)),
      scores: optional((v) => Array.isArray(v) && v.every(isModelScore)),
      extra: optional(isPlainObject),
    },
    source,
  ) as unknown as CheckpointMeta;
  const meta: CheckpointMeta = { name: m.name, kind: m.kind, createdAt: m.createdAt };
  if (m.parent !== undefined) meta.parent = m.parent;
  if (m.parents !== undefined) meta.parents = [...m.parents];
  if (m.datasetId !== undefined) meta.datasetId = m.datasetId;
  if (m.epoch !== undefined) meta.epoch = m.epoch;
  if (m.kimg !== undefined) meta.kimg = m.kimg;
  if (m.augmentP !== undefined) meta.augmentP = m.augmentP;
  if (m.losses !== undefined) meta.losses = { ...m.losses };
  if (m.scores !== undefined) meta.scores = m.scores.map((score) => ({ ...score }));
  if (m.extra !== undefined) meta.extra = structuredClone(m.extra);
  return meta;
}

function parseJsonField(metadata: Record<string, string>, key: string, source: string): unknown {
  const text = metadata[key];
  if (text === undefined) throw problem(source, `facestyle checkpoint metadata has no "${key}" entry`);
  try {
    return JSON.parse(text);
  } catch {
    throw problem(source, `facestyle checkpoint metadata "${key}" is not valid JSON`);
  }
}

function readProjectMetadata(
  metadata: Record<string, string>,
  source: string,
): { config: ModelConfig; meta: CheckpointMeta } | undefined {
  // Other writers put their own `format` here (e.g. "pt"): those files are official exports.
  if (metadata.format !== CHECKPOINT_FORMAT) return undefined;
  if (metadata.version !== CHECKPOINT_VERSION) {
    throw problem(
      source,
      `is a facestyle checkpoint of format version ${JSON.stringify(metadata.version)}; this build reads version ${CHECKPOINT_VERSION}`,
      'update facestyle to read it',
    );
  }
  return {
    config: parseModelConfig(parseJsonField(metadata, 'config', source), source),
    meta: parseCheckpointMeta(parseJsonField(metadata, 'meta', source), source),
  };
}

/** Non-inferable settings of an official export, from its metadata when a converter recorded them. */
function hintsFromMetadata(metadata: Record<string, string>, source: string): ConfigHints {
  const hints: ConfigHints = {};
  const group = metadata.mbstd_group_size;
  if (group !== undefined) {
    const value = Number(group);
    if (!isPositiveInteger(value))
      throw problem(source, `metadata mbstd_group_size "${group}" is not a positive integer`);
    hints.mbstdGroupSize = value;
  }
  const clamp = metadata.conv_clamp;
  if (clamp !== undefined) {
    const value = ['', 'none', 'null'].includes(clamp.toLowerCase()) ? null : Number(clamp);
    if (!isConvClamp(value))
      throw problem(source, `metadata conv_clamp "${clamp}" is not a positive number or none`);
    hints.convClamp = value;
  }
  return hints;
}

// ---------------------------------------------------------------------------------------------
// Reading

interface FileLayout {
  config: ModelConfig;
  meta: CheckpointMeta;
  format: CheckpointInfo['format'];
  groups: NetworkGroups<TensorEntry>;
}

async function openCheckpointFile(path: string): Promise<SafetensorsReader> {
  try {
    return await SafetensorsReader.open(path);
  } catch (err) {
    throw asCheckpointError(err, path);
  }
}

/** Turns file-system and format errors into CheckpointErrors; anything else (a bug) passes through. */
function asCheckpointError(err: unknown, path: string): unknown {
  if (err instanceof CheckpointError) return err;
  if (err instanceof SafetensorsError) return new CheckpointError(err.message, err.hint, err);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return new CheckpointError(`checkpoint file not found: ${path}`, undefined, err);
  if (code === 'EISDIR')
    return new CheckpointError(`${path} is a directory, not a checkpoint file`, undefined, err);
  if (code === 'EACCES' || code === 'EPERM') {
    return new CheckpointError(`cannot read checkpoint ${path}: permission denied`, undefined, err);
  }
  return err;
}

async function describeFile(reader: SafetensorsReader): Promise<FileLayout> {
  const source = reader.path;
  const groups = splitByNetwork(reader.entries, source);
  for (const entry of reader.entries.values()) {
    if (!FLOAT_DTYPES.has(entry.dtype)) {
      throw problem(
        source,
        `tensor ${entry.name} has dtype ${entry.dtype}; model tensors must be floating point`,
      );
    }
  }
  const shapes = mapGroups(groups, (entry) => entry.shape);
  const project = readProjectMetadata(reader.metadata, source);
  if (project) {
    checkShapesAgainstConfig(shapes, project.config, source);
    return { ...project, format: 'facestyle', groups };
  }
  const config = inferConfigOfGroups(shapes, hintsFromMetadata(reader.metadata, source), source);
  const { mtime } = await stat(reader.path);
  const meta: CheckpointMeta = {
    name: basename(reader.path, extname(reader.path)),
    kind: 'import',
    createdAt: mtime.toISOString(),
  };
  return { config, meta, format: 'official', groups };
}

export async function withCheckpointFile<T>(
  path: string,
  use: (reader: SafetensorsReader, layout: FileLayout) => Promise<T>,
): Promise<T> {
  const reader = await openCheckpointFile(path);
  try {
    return await use(reader, await describeFile(reader));
  } catch (err) {
    throw asCheckpointError(err, path);
  } finally {
    await reader.close();
  }
}

/** Config, meta and tensor list, without reading any tensor data (for model listings). */
export async function readCheckpointInfo(path: string): Promise<CheckpointInfo> {
  return withCheckpointFile(path, async (reader, layout) => ({
    path,
    config: layout.config,
    meta: layout.meta,
    format: layout.format,
    networks: NETWORK_NAMES.filter((n) => layout.groups.has(n)),
    tensors: [...reader.entries.values()].map(({ name, dtype, shape }) => ({ name, dtype, shape })),
    fileBytes: reader.fileBytes,
  }));
}
