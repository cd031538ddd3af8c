// `facestyle import`: official StyleGAN2 weights in the formats people have them (NVIDIA network
// pickles, torch.save state_dicts with NVIDIA or rosinality names, safetensors with either) into
// one of our checkpoints. The architecture is inferred from the tensor shapes and checked before
// any weight is read; settings that shapes cannot show come from the pickle's modules, the
// source's conventions, or the caller.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import {
  CheckpointError,
  type CheckpointMeta,
  type ConfigHints,
  disposeCheckpoint,
  inferConfig,
  loadCheckpoint,
  NETWORK_NAMES,
  type NetworkName,
  type Networks,
  saveCheckpoint,
  splitByNetwork,
} from '../checkpoint/io.ts';
import { tfShapeOf, torchToTf } from '../checkpoint/layout.ts';
import { type FloatWriteDType, SafetensorsReader } from '../checkpoint/safetensors.ts';
import { type GeneratorConfig, type ModelConfig, numWs } from '../config.ts';
import { MappingNetwork } from '../networks/mapping.ts';
import { disposeParams, type ParamStore } from '../params.ts';
import { NumpyRandomState } from '../seeds.ts';
import { tf } from '../tf.ts';
import { type ConfigOverrides, findNetworkState } from './network-state.ts';
import { isRosinalityNaming, rosinalityToOfficial } from './rosinality.ts';
import type { SourceTensors } from './source-tensors.ts';
import { openTorchZip, pickleFileFromBytes, type TorchFile, type TorchFileKind } from './torch-file.ts';
import { FLOAT_DTYPES, tensorToFloat32 } from './torch-pickle.ts';

export type SourceFormat = 'safetensors' | TorchFileKind;
export type Naming = 'nvidia' | 'rosinality';

export interface ImportOptions {
  out: string;
  /** Checkpoint name (default: the source file's name). */
  name?: string;
  /** Storage type for weights in the written checkpoint (default F32). */
  dtype?: FloatWriteDType;
  /** Settings shapes cannot show, when the file does not record them (state_dicts). */
  hints?: ConfigHints;
  /** z samples averaged for w_avg when the file has none (rosinality checkpoints without latent_avg). */
  wAvgSamples?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Seconds spent in each step of an import (what `npm run bench -- import` reports). The steps do
 * not overlap; their sum falls short of `seconds` by the format sniffing and, for rosinality files
 * without w_avg, its estimation.
 */
export interface ImportTimings {
  /** sha256 of the source: one full pass over the file. */
  hash: number;
  /** Bytes from disk: the whole file for a .pkl, each storage record for a .pt, each tensor for a
   * rosinality .safetensors; for an official-name .safetensors the whole load, conversion included. */
  read: number;
  /** Unpickling (a .pkl with every storage in it, or a .pt's zip directory and data.pkl), or the
   * safetensors header. */
  parse: number;
  /** Decoding to float32, PyTorch to tfjs layouts and tf.Tensor creation; null where `read`
   * includes it (official-name .safetensors, loaded by the checkpoint loader). */
  convert: number | null;
  /** Writing the checkpoint. */
  write: number;
}

export interface ImportReport {
  out: string;
  config: ModelConfig;
  meta: CheckpointMeta;
  format: SourceFormat;
  naming: Naming;
  networks: NetworkName[];
  sourceBytes: number;
  sha256: string;
  seconds: number;
  timings: ImportTimings;
}

const DEFAULT_W_AVG_SAMPLES = 4096;
const W_AVG_SEED = 0;
const W_AVG_BATCH = 256;
/** rosinality/stylegan2-pytorch never clamps activations and uses minibatch-std groups of 4. */
const ROSINALITY_HINTS: ConfigHints = { convClamp: null, mbstdGroupSize: 4 };

/** What a file is, from its first bytes. */
export async function sniffFormat(path: string): Promise<'zip' | 'pickle' | 'safetensors'> {
  const handle = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new CheckpointError(`file not found: ${path}`);
    if (err.code === 'EISDIR') throw new CheckpointError(`${path} is a directory, not a weights file`);
    throw err;
  });
  try {
    const head = Buffer.alloc(16);
    const { bytesRead } = await handle.read(head, 0, 16, 0);
    const bytes = head.subarray(0, bytesRead);
    if (bytes.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1'))) return 'zip';
    if (bytes[0] === 0x80 && bytes[1] >= 2 && bytes[1] <= 5) return 'pickle';
    if (bytesRead >= 9 && bytes.readBigUInt64LE(0) < 100_000_000n && bytes[8] === 0x7b) return 'safetensors';
    const what =
      bytesRead === 0
        ? 'the file is empty'
        : bytes.subarray(0, 4).equals(Buffer.from('PK\x05\x06', 'latin1'))
          ? 'it is an empty zip archive'
          : bytes[0] === 0x1f && bytes[1] === 0x8b
            ? 'it is gzip-compressed (unpack it first)'
            : 'its first bytes match none of them';
    throw new CheckpointError(
      `${path}: unknown format: expected a network pickle (.pkl), a torch.save file (.pt/.pth) or .safetensors; ${what}`,
    );
  } finally {
    await handle.close();
  }
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function newTimings(): ImportTimings {
  return { hash: 0, read: 0, parse: 0, convert: 0, write: 0 };
}

/** Runs `f`, adding its seconds to `timings[step]`. */
async function timed<T>(
  timings: ImportTimings,
  step: keyof ImportTimings,
  f: () => Promise<T> | T,
): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    timings[step] = (timings[step] ?? 0) + (performance.now() - t0) / 1000;
  }
}

function timedSync<T>(timings: ImportTimings, step: keyof ImportTimings, f: () => T): T {
  const t0 = performance.now();
  try {
    return f();
  } finally {
    timings[step] = (timings[step] ?? 0) + (performance.now() - t0) / 1000;
  }
}

interface GatheredTensors {
  format: SourceFormat;
  tensors: SourceTensors;
  overrides: ConfigOverrides;
  notes: string[];
  close(): Promise<void>;
}

function gatherTorch(path: string, file: TorchFile, timings: ImportTimings): GatheredTensors {
  const { tensors, overrides, notes } = findNetworkState(file.root, path);
  const out: SourceTensors = new Map();
  for (const [name, tensor] of tensors) {
    if (!FLOAT_DTYPES.has(tensor.dtype))
      throw new CheckpointError(
        `${path}: tensor ${name} has dtype ${tensor.dtype}; model tensors must be floating point`,
      );
    out.set(name, {
      shape: [...tensor.shape],
      read: async () => {
        await timed(timings, 'read', () => file.load(tensor.storage));
        return timedSync(timings, 'convert', () => tensorToFloat32(tensor, name, path));
      },
    });
  }
  return { format: file.kind, tensors: out, overrides, notes, close: () => file.close() };
}

function gatherSafetensors(path: string, reader: SafetensorsReader, timings: ImportTimings): GatheredTensors {
  const tensors: SourceTensors = new Map();
  for (const entry of reader.entries.values()) {
    if (!['F32', 'F16', 'BF16', 'F64'].includes(entry.dtype))
      throw new CheckpointError(
        `${path}: tensor ${entry.name} has dtype ${entry.dtype}; model tensors must be floating point`,
      );
    tensors.set(entry.name, {
      shape: entry.shape,
      read: async () => (await timed(timings, 'read', () => reader.readFloat32(entry.name))).data,
    });
  }
  return { format: 'safetensors', tensors, overrides: {}, notes: [], close: () => reader.close() };
}

/** Names as `G_ema.`/`G.`/`D.` + official name; bare state_dict names get their network's prefix. */
function withNetworkPrefixes(tensors: SourceTensors, path: string): SourceTensors {
  const out: SourceTensors = new Map();
  for (const [network, group] of splitByNetwork(tensors, path)) {
    for (const [name, tensor] of group.tensors) out.set(`${network}.${name}`, tensor);
  }
  return out;
}

function applyOverrides(config: ModelConfig, overrides: ConfigOverrides): void {
  Object.assign(config.G, overrides.G ?? {});
  if (config.D) Object.assign(config.D, overrides.D ?? {});
}

async function readParams(
  tensors: SourceTensors,
  network: NetworkName,
  timings: ImportTimings,
  progress: () => void,
): Promise<ParamStore> {
  const params: ParamStore = new Map();
  try {
    for (const [fullName, tensor] of tensors) {
      if (!fullName.startsWith(`${network}.`)) continue;
      const name = fullName.slice(network.length + 1);
      const data = await tensor.read();
      params.set(
        name,
        timedSync(timings, 'convert', () =>
          tf.tensor(torchToTf(name, tensor.shape, data), tfShapeOf(name, tensor.shape), 'float32'),
        ),
      );
      progress();
    }
  } catch (err) {
    disposeParams(params);
    throw err;
  }
  return params;
}

/**
 * The mean of w over `samples` latents (z from numpy's RandomState(0)), which is what w_avg
 * converges to in training and what rosinality's mean_latent computes.
 */
export async function estimateWAvg(
  cfg: GeneratorConfig,
  params: ParamStore,
  samples: number,
): Promise<Float32Array> {
  const mapping = new MappingNetwork(cfg, numWs(cfg.resolution));
  const rng = new NumpyRandomState(W_AVG_SEED);
  const sum = new Float64Array(cfg.wDim);
  for (let done = 0; done < samples; done += W_AVG_BATCH) {
    const count = Math.min(W_AVG_BATCH, samples - done);
    const batchSum = tf.tidy(() => {
      const z = tf.tensor2d(Float32Array.from(rng.randn(count * cfg.zDim)), [count, cfg.zDim]);
      return tf.sum(mapping.embed(params, z), 0);
    });
    const values = await batchSum.data();
    batchSum.dispose();
    for (let i = 0; i < cfg.wDim; i++) sum[i] += values[i];
  }
  return Float32Array.from(sum, (v) => v / samples);
}

/** Prefixes a checkpoint-layer error (which names no file when shapes come from elsewhere) with the source. */
function withSource<T>(path: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof CheckpointError && !err.message.includes(path))
      throw new CheckpointError(`${path}: ${err.message}`, err.hint, err);
    throw err;
  }
}

function importMeta(path: string, opts: ImportOptions, extra: Record<string, unknown>): CheckpointMeta {
  return {
    name: opts.name ?? basename(path, extname(path)),
    kind: 'import',
    createdAt: new Date().toISOString(),
    extra,
  };
}

async function closingOnError<T>(resource: { close(): Promise<void> }, use: () => T): Promise<T> {
  try {
    return use();
  } catch (err) {
    await resource.close();
    throw err;
  }
}

interface OfficialTensors {
  /** Official names with network prefixes (G_ema./G./D.). */
  tensors: SourceTensors;
  naming: Naming;
  /** Generators whose w_avg the file lacks: a zero placeholder now, estimated once loaded. */
  missingWAvg: NetworkName[];
  hints: ConfigHints;
}

/** Maps rosinality names when needed and gives every name its network prefix. */
async function toOfficialTensors(
  tensors: SourceTensors,
  hints: ConfigHints,
  path: string,
): Promise<OfficialTensors> {
  if (!isRosinalityNaming(tensors.keys()))
    return {
      tensors: withSource(path, () => withNetworkPrefixes(tensors, path)),
      naming: 'nvidia',
      missingWAvg: [],
      hints,
    };
  const { tensors: mapped, missingWAvg } = await rosinalityToOfficial(tensors, path);
  for (const network of missingWAvg) {
    const wDim = mapped.get(`${network}.mapping.fc0.bias`)?.shape[0];
    if (wDim !== undefined)
      mapped.set(`${network}.mapping.w_avg`, { shape: [wDim], read: async () => new Float32Array(wDim) });
  }
  return { tensors: mapped, naming: 'rosinality', missingWAvg, hints: { ...ROSINALITY_HINTS, ...hints } };
}

/** Reads every tensor into ParamStores, one network at a time. */
async function readNetworks(
  tensors: SourceTensors,
  timings: ImportTimings,
  onProgress: ImportOptions['onProgress'],
): Promise<Networks> {
  const networks: Networks = {};
  let done = 0;
  try {
    for (const network of NETWORK_NAMES) {
      if ([...tensors.keys()].some((name) => name.startsWith(`${network}.`))) {
        networks[network] = await readParams(tensors, network, timings, () =>
          onProgress?.(++done, tensors.size),
        );
      }
    }
  } catch (err) {
    disposeCheckpoint(networks);
    throw err;
  }
  return networks;
}

/** Imports a weights file into a checkpoint at `opts.out`. */
export async function importWeights(path: string, opts: ImportOptions): Promise<ImportReport> {
  const started = performance.now();
  const timings = newTimings();
  const sniffed = await sniffFormat(path);
  const [sha256, { size: sourceBytes }] = await timed(timings, 'hash', () =>
    Promise.all([sha256Of(path), stat(path)]),
  );
  const sourceInfo = { importedFrom: basename(path), sourceSha256: sha256, sourceBytes };

  let gathered: GatheredTensors;
  if (sniffed === 'safetensors') {
    const reader = await timed(timings, 'parse', () => SafetensorsReader.open(path));
    if (!isRosinalityNaming(reader.names())) {
      await reader.close();
      return importOfficialSafetensors(path, opts, sourceInfo, started, timings);
    }
    gathered = await closingOnError(reader, () => gatherSafetensors(path, reader, timings));
  } else {
    let file: TorchFile;
    if (sniffed === 'zip') file = await timed(timings, 'parse', () => openTorchZip(path));
    else {
      // A pickle is read whole: every storage it holds is in memory once it is parsed.
      const bytes = await timed(timings, 'read', () => readFile(path));
      file = timedSync(timings, 'parse', () => pickleFileFromBytes(bytes, path));
    }
    gathered = await closingOnError(file, () => gatherTorch(path, file, timings));
  }

  let networks: Networks = {};
  try {
    const official = await toOfficialTensors(gathered.tensors, opts.hints ?? {}, path);
    // Shapes alone settle the architecture, before a single weight is read.
    const shapes = new Map([...official.tensors].map(([name, t]) => [name, t.shape]));
    const config = withSource(path, () => inferConfig(shapes, official.hints));
    applyOverrides(config, gathered.overrides);
    networks = await readNetworks(official.tensors, timings, opts.onProgress);
    const samples = opts.wAvgSamples ?? DEFAULT_W_AVG_SAMPLES;
    for (const network of official.missingWAvg) {
      const params = networks[network]!;
      const wAvg = await estimateWAvg(config.G, params, samples);
      params.get('mapping.w_avg')?.dispose();
      params.set('mapping.w_avg', tf.tensor1d(wAvg));
    }
    const meta = importMeta(path, opts, {
      ...sourceInfo,
      sourceFormat: gathered.format,
      naming: official.naming,
      ...(official.missingWAvg.length
        ? { wAvg: `estimated from ${samples} samples (the file has none)` }
        : {}),
      ...(gathered.notes.length ? { notes: gathered.notes } : {}),
    });
    await timed(timings, 'write', () =>
      saveCheckpoint(opts.out, { config, meta, ...networks }, { dtype: opts.dtype }),
    );
    return {
      out: opts.out,
      config,
      meta,
      format: gathered.format,
      naming: official.naming,
      networks: NETWORK_NAMES.filter((n) => networks[n]),
      sourceBytes,
      sha256,
      seconds: (performance.now() - started) / 1000,
      timings,
    };
  } finally {
    disposeCheckpoint(networks);
    await gathered.close();
  }
}

/** An official-name safetensors file (ours or an export): the checkpoint loader reads it as is. */
async function importOfficialSafetensors(
  path: string,
  opts: ImportOptions,
  sourceInfo: Record<string, unknown>,
  started: number,
  timings: ImportTimings,
): Promise<ImportReport> {
  const ckpt = await timed(timings, 'read', () => loadCheckpoint(path));
  timings.convert = null;
  try {
    const config = ckpt.config;
    const { convClamp, mbstdGroupSize } = opts.hints ?? {};
    applyOverrides(config, {
      G: convClamp === undefined ? {} : { convClamp },
      D: { ...(convClamp === undefined ? {} : { convClamp }), ...(mbstdGroupSize ? { mbstdGroupSize } : {}) },
    });
    const meta = importMeta(path, opts, { ...sourceInfo, sourceFormat: 'safetensors', naming: 'nvidia' });
    await timed(timings, 'write', () =>
      saveCheckpoint(
        opts.out,
        { config, meta, G_ema: ckpt.G_ema, G: ckpt.G, D: ckpt.D },
        { dtype: opts.dtype },
      ),
    );
    return {
      out: opts.out,
      config,
      meta,
      format: 'safetensors',
      naming: 'nvidia',
      networks: NETWORK_NAMES.filter((n) => ckpt[n]),
      sourceBytes: sourceInfo.sourceBytes as number,
      sha256: sourceInfo.sourceSha256 as string,
      seconds: (performance.now() - started) / 1000,
      timings,
    };
  } finally {
    disposeCheckpoint(ckpt);
  }
}
