// Our own files' `__metadata__` (format, version, ModelConfig, CheckpointMeta), validated field by
// field, and the setting hints a converter may record in an official export's metadata.
import {
  assertResolution,
  type DiscriminatorConfig,
  type GeneratorConfig,
  type ModelConfig,
} from '../config.ts';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_KINDS,
  CHECKPOINT_VERSION,
  type CheckpointMeta,
  type ConfigHints,
  type ModelScore,
  problem,
} from './format.ts';

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

export function readProjectMetadata(
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
export function hintsFromMetadata(metadata: Record<string, string>, source: string): ConfigHints {
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
