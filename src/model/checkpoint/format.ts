// Checkpoints are safetensors files holding up to three networks (G_ema: the generator that makes
// images, G: the training generator, D: the discriminator) under the official NVlabs
// stylegan2-ada-pytorch state_dict names with a network prefix, in PyTorch layouts, so official
// weights load by name and our files load in the official tools. Our own files add `__metadata__`
// with the ModelConfig and a CheckpointMeta; files without it (plain official exports) load too,
// with the config inferred from the tensor shapes.
//
// This folder reads and validates the format without TensorFlow.js, so processes that only list
// models (the bot) never load tfjs; io.ts adds loading and saving tensors. By concern:
//   format.ts    the format's types, names, constants and errors (this file)
//   tensors.ts   the tensor table each network must hold (derived from networks/specs.ts),
//                grouping file names by network, checking shapes
//   infer.ts     the ModelConfig of an official export, from its tensor shapes
//   metadata.ts  our `__metadata__` (config and meta) and an export's setting hints
//   info.ts      opening a file: what it holds, without reading tensor data
//   layout.ts    PyTorch <-> TensorFlow.js layouts;  safetensors.ts  the container format
//   io.ts        loading and saving tensors (needs tfjs)
import { UserError } from '../../errors.ts';
import type { ModelConfig } from '../config.ts';
import type { ParamStore } from '../params.ts';
import type { FloatWriteDType, SafetensorsDType } from './safetensors.ts';

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

/** Buffers stored as F32 whatever the weights' dtype: they must reproduce exactly. */
export const EXACT_BUFFER = /(^|\.)(resample_filter|noise_const|w_avg)$/;

/** A checkpoint that cannot be read, written or used; the message names the file and the problem. */
export class CheckpointError extends UserError {
  override name = 'CheckpointError';
  constructor(message: string, hint?: string, cause?: unknown) {
    super(message, hint);
    if (cause !== undefined) this.cause = cause;
  }
}

/** A CheckpointError whose message starts with the file (or other source) it is about. */
export function problem(source: string | undefined, message: string, hint?: string): CheckpointError {
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
