// Which models exist: every checkpoint under the model folders (checkpoints/, fine-tune runs),
// known by the name and metadata inside the file, so `/generate model:anime` and
// `/blend epochs:160` resolve to files without naming conventions.
import { readdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { logger } from '../log.ts';
import type { CheckpointKind, ModelScore } from '../model/checkpoint/format.ts';
import { readCheckpointInfo } from '../model/checkpoint/info.ts';
import { bestScored, trainingScore } from './score/best.ts';

const log = logger('models');

/** Folders scanned for models: the repository's checkpoints, imported models and fine-tune runs. */
export function modelDirs(dataDir: string): string[] {
  return [resolve('checkpoints'), join(dataDir, 'models'), join(dataDir, 'runs')];
}

export interface ModelEntry {
  /** The model's name from its metadata (a style's snapshots share one name). */
  name: string;
  path: string;
  kind: CheckpointKind;
  epoch?: number;
  kimg?: number;
  parent?: string;
  resolution: number;
  createdAt: string;
  fileBytes: number;
  /** Has D (and G): can be fine-tuned from. */
  trainable: boolean;
  /** KID against its training images, when it was scored (src/pipelines/score). */
  score?: ModelScore;
}

async function* checkpointFiles(dir: string, depth = 3): AsyncGenerator<string> {
  let entries: Array<{ name: string; isDirectory(): boolean; isFile(): boolean }>;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const full = join(dir, e.name);
    if (e.isDirectory() && depth > 0) yield* checkpointFiles(full, depth - 1);
    else if (e.isFile() && e.name.endsWith('.safetensors')) yield full;
  }
}

function scoreOf(meta: Parameters<typeof trainingScore>[0]): { score?: ModelScore } {
  const score = trainingScore(meta);
  return score ? { score } : {};
}

export class ModelRegistry {
  private entries: ModelEntry[] = [];
  private scannedAt = 0;

  constructor(
    readonly dirs: string[],
    /** Rescan at most this often (ms): new snapshots appear while fine-tunes run. */
    readonly maxAgeMs = 10_000,
  ) {}

  async refresh(force = false): Promise<ModelEntry[]> {
    if (!force && Date.now() - this.scannedAt < this.maxAgeMs) return this.entries;
    const found: ModelEntry[] = [];
    for (const dir of this.dirs) {
      for await (const path of checkpointFiles(resolve(dir))) {
        try {
          const info = await readCheckpointInfo(path);
          found.push({
            name: info.meta.name,
            path,
            kind: info.meta.kind,
            epoch: info.meta.epoch,
            kimg: info.meta.kimg,
            parent: info.meta.parent,
            resolution: info.config.G.resolution,
            createdAt: info.meta.createdAt,
            fileBytes: info.fileBytes,
            trainable: info.networks.includes('D') && info.networks.includes('G'),
            ...scoreOf(info.meta),
          });
        } catch (err) {
          // A half-copied or foreign file must not hide every other model.
          log.warn(`skipping unreadable checkpoint ${path}: ${(err as Error).message}`);
        }
      }
    }
    found.sort((a, b) => a.name.localeCompare(b.name) || (a.epoch ?? 0) - (b.epoch ?? 0));
    this.entries = found;
    this.scannedAt = Date.now();
    return found;
  }

  /** One entry per model name: the latest snapshot of each. */
  async models(): Promise<ModelEntry[]> {
    const latest = new Map<string, ModelEntry>();
    for (const e of await this.refresh()) {
      const prev = latest.get(e.name);
      if (!prev || (e.epoch ?? -1) >= (prev.epoch ?? -1)) latest.set(e.name, e);
    }
    return [...latest.values()];
  }

  /** Snapshots of a model ordered by epoch. */
  async snapshots(name: string): Promise<ModelEntry[]> {
    return (await this.refresh()).filter((e) => e.name === name && e.epoch !== undefined);
  }

  /** A model by name (latest snapshot), file name or path. */
  async resolve(nameOrPath: string): Promise<ModelEntry> {
    const entries = await this.refresh();
    const byName = (await this.models()).find((e) => e.name === nameOrPath);
    if (byName) return byName;
    const byFile = entries.find(
      (e) => e.path === resolve(nameOrPath) || basename(e.path, '.safetensors') === nameOrPath,
    );
    if (byFile) return byFile;
    if (nameOrPath.endsWith('.safetensors')) {
      const s = await stat(nameOrPath).catch(() => null);
      if (s?.isFile()) {
        await this.refresh(true);
        const info = await readCheckpointInfo(nameOrPath);
        return {
          name: info.meta.name,
          path: resolve(nameOrPath),
          kind: info.meta.kind,
          epoch: info.meta.epoch,
          resolution: info.config.G.resolution,
          createdAt: info.meta.createdAt,
          fileBytes: info.fileBytes,
          trainable: info.networks.includes('D'),
          ...scoreOf(info.meta),
        };
      }
    }
    const names = (await this.models()).map((e) => e.name);
    throw new UserError(
      `no model named "${nameOrPath}"`,
      names.length ? `known models: ${names.join(', ')}` : 'no models are installed yet',
    );
  }

  /** The best-scored snapshot of `name` (lowest KID against its training images), if any is scored. */
  async bestSnapshot(name: string): Promise<ModelEntry | undefined> {
    return bestScored(await this.snapshots(name));
  }

  /** The snapshot of `name` at exactly `epoch`; the error lists the epochs that exist. */
  async snapshotAt(name: string, epoch: number): Promise<ModelEntry> {
    const snaps = await this.snapshots(name);
    if (snaps.length === 0) {
      return this.resolve(name);
    }
    const exact = snaps.find((s) => s.epoch === epoch);
    if (exact) return exact;
    const epochs = snaps.map((s) => s.epoch).join(', ');
    throw new UserError(
      `model "${name}" has no snapshot at epoch ${epoch}`,
      `snapshots exist at epochs ${epochs}`,
    );
  }
}
