// The tensors a checkpoint holds: the table each network must have, derived from the networks' own
// parameter specs (networks/specs.ts) in PyTorch layouts; grouping a file's names by network; and
// checking a file's shapes against a config.
import type { DiscriminatorConfig, GeneratorConfig, ModelConfig } from '../config.ts';
import { discriminatorSpecs, generatorSpecs, type ParamSpec } from '../networks/specs.ts';
import { formatShape, listNames, type NetworkName, problem, sameShape } from './format.ts';
import { torchShapeOf } from './layout.ts';

function torchShapes(specs: ParamSpec[]): Map<string, number[]> {
  return new Map(specs.map((spec) => [spec.name, torchShapeOf(spec.name, spec.shape)]));
}

/**
 * Every tensor of an official StyleGAN2 generator (`skip` architecture, unconditional) with its
 * PyTorch shape, keyed by name without the network prefix, in official order.
 */
export function generatorTorchShapes(cfg: GeneratorConfig): Map<string, number[]> {
  return torchShapes(generatorSpecs(cfg));
}

/**
 * Every tensor of an official StyleGAN2 discriminator (`resnet` architecture, unconditional) with
 * its PyTorch shape, keyed by name without the network prefix, in official order.
 */
export function discriminatorTorchShapes(cfg: DiscriminatorConfig): Map<string, number[]> {
  return torchShapes(discriminatorSpecs(cfg));
}

export interface NetworkTensors<T> {
  /** Prefix the names carry in the file ('G_ema.', 'G.', 'D.', or '' for a bare state_dict). */
  prefix: string;
  /** Keyed by name without the prefix. */
  tensors: Map<string, T>;
}

export type NetworkGroups<T> = Map<NetworkName, NetworkTensors<T>>;

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

export function mapGroups<T, U>(groups: NetworkGroups<T>, f: (value: T) => U): NetworkGroups<U> {
  const out: NetworkGroups<U> = new Map();
  for (const [network, group] of groups) {
    out.set(network, {
      prefix: group.prefix,
      tensors: new Map([...group.tensors].map(([n, v]) => [n, f(v)])),
    });
  }
  return out;
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

export function imageGeneratorGroup<T>(
  groups: NetworkGroups<T>,
  source: string | undefined,
): NetworkTensors<T> {
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
export function checkShapesAgainstConfig(
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
