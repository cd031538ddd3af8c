// The bot's view of the models: the checkpoints the model registry finds (base models, fine-tune
// snapshots, blends), by the names inside the files, and new run folders for fine-tunes.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import type { CheckpointKind } from '../model/checkpoint/io.ts';
import type { ModelRegistry } from '../pipelines/registry.ts';
import { bestScored } from '../pipelines/score/best.ts';
import type { ModelCatalog, ModelKind, ModelSummary } from './services.ts';

const KINDS: Record<CheckpointKind, ModelKind> = {
  base: 'base',
  import: 'base',
  demo: 'base',
  finetune: 'finetuned',
  blend: 'blend',
};

export class RegistryModelCatalog implements ModelCatalog {
  constructor(
    private readonly registry: ModelRegistry,
    /** Parent folder of fine-tune runs; the registry must scan it too for snapshots to appear. */
    private readonly runsDir: string,
    /** FACESTYLE_DEFAULT_MODEL; the first base model by name when absent. */
    private readonly preferredDefault?: string,
  ) {}

  async list(): Promise<ModelSummary[]> {
    const entries = await this.registry.refresh();
    const latest = await this.registry.models();
    return latest.map((entry) => {
      const snapshotEntries = entries.filter((e) => e.name === entry.name && e.epoch !== undefined);
      const snapshots = snapshotEntries.map((e) => e.epoch as number);
      const best = bestScored(snapshotEntries);
      const score = (best ?? entry).score;
      return {
        name: entry.name,
        kind: KINDS[entry.kind],
        resolution: entry.resolution,
        parent: entry.parent,
        ...(snapshots.length ? { snapshots } : {}),
        ...(best ? { bestEpoch: best.epoch } : {}),
        ...(score ? { score: { metric: score.metric, kid: score.kid, kidStd: score.kidStd } } : {}),
        createdAt: Date.parse(entry.createdAt),
      };
    });
  }

  async defaultModel(): Promise<string | undefined> {
    const models = await this.list();
    if (this.preferredDefault && models.some((m) => m.name === this.preferredDefault))
      return this.preferredDefault;
    return models
      .filter((m) => m.kind === 'base')
      .map((m) => m.name)
      .sort()[0];
  }

  async snapshot(model: string, epoch?: number): Promise<string> {
    const entry =
      epoch === undefined ? await this.registry.resolve(model) : await this.registry.snapshotAt(model, epoch);
    return entry.path;
  }

  async reserveRunDir(name: string): Promise<string> {
    const dir = join(this.runsDir, name);
    await mkdir(this.runsDir, { recursive: true });
    try {
      // Not recursive: creating it is the reservation, so two admins cannot both get the name.
      await mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new UserError(`a fine-tune called "${name}" already exists`, 'pick another name (see /models)');
      }
      throw err;
    }
    return dir;
  }
}
