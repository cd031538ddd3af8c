// Opening a checkpoint file: which networks and tensors it holds, with its config and meta
// (validated against each other), without reading tensor data.
import { stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import type { ModelConfig } from '../config.ts';
import {
  CheckpointError,
  type CheckpointInfo,
  type CheckpointMeta,
  NETWORK_NAMES,
  problem,
} from './format.ts';
import { inferConfigOfGroups } from './infer.ts';
import { hintsFromMetadata, readProjectMetadata } from './metadata.ts';
import {
  type SafetensorsDType,
  SafetensorsError,
  SafetensorsReader,
  type TensorEntry,
} from './safetensors.ts';
import { checkShapesAgainstConfig, mapGroups, type NetworkGroups, splitByNetwork } from './tensors.ts';

const FLOAT_DTYPES: ReadonlySet<SafetensorsDType> = new Set(['F32', 'F16', 'BF16', 'F64']);

export interface FileLayout {
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
