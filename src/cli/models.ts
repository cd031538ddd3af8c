// Models for the commands that take one, from the same registry the bot and `npm start` use
// (checkpoints/, the data folder's models/ and runs/): a flag may name a file or a model, and a
// flag left out falls back to the default model (FACESTYLE_DEFAULT_MODEL, else the first base
// model by name) or to the style fine-tuned from it. Every fallback is said on stderr.
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { UserError } from '../errors.ts';
import { type ModelEntry, ModelRegistry, modelDirs } from '../pipelines/registry.ts';

const BASE_KINDS = new Set(['base', 'import', 'demo']);

let shared: ModelRegistry | undefined;
function registry(): ModelRegistry {
  // One scan per command: the CLI does not outlive new snapshots.
  shared ??= new ModelRegistry(modelDirs(process.env.FACESTYLE_DATA_DIR || 'data'), 60 * 60_000);
  return shared;
}

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
}

function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** A file path as given, or the file of a model known by name (`demo-faces`, `demo-lorelei`). */
export async function modelFile(value: string): Promise<string> {
  if (existsSync(value)) return value;
  return (await registry().resolve(value)).path;
}

/** The model `/generate` uses when none is named: FACESTYLE_DEFAULT_MODEL, else the first base model. */
export async function defaultBaseModel(flag: string): Promise<ModelEntry> {
  const models = await registry().models();
  const preferred = process.env.FACESTYLE_DEFAULT_MODEL;
  const chosen =
    (preferred ? models.find((m) => m.name === preferred) : undefined) ??
    models.filter((m) => BASE_KINDS.has(m.kind)).sort((a, b) => a.name.localeCompare(b.name))[0];
  if (!chosen)
    throw new UserError(
      `no ${flag} given and no base model is installed`,
      `give ${flag} <file.safetensors>, or put checkpoints in checkpoints/ (\`npm run demo:train\` rebuilds the demo models)`,
    );
  say(`${flag}: the default model ${chosen.name} (${shown(chosen.path)}); give ${flag} to use another`);
  return chosen;
}

/** `value` when given, else the default base model's file. */
export async function baseModelFile(value: string | undefined, flag: string): Promise<string> {
  return value === undefined ? (await defaultBaseModel(flag)).path : modelFile(value);
}

async function nameOf(file: string): Promise<string> {
  const entry = await registry()
    .resolve(file)
    .catch(() => undefined);
  return entry?.name ?? file;
}

/**
 * The style model fine-tuned from `baseFile`, the first by name if several: its best-scored
 * snapshot (as `/blend` without an epoch and `npm start` take), else its latest.
 */
export async function defaultStyleModel(baseFile: string, flag: string, quiet = false): Promise<ModelEntry> {
  const baseName = await nameOf(baseFile);
  const styles = (await registry().models())
    .filter((m) => m.kind === 'finetune' && m.parent === baseName)
    .sort((a, b) => a.name.localeCompare(b.name));
  if (!styles[0])
    throw new UserError(
      `no ${flag} given and no style model fine-tuned from ${baseName} is installed`,
      `give ${flag} <file.safetensors>`,
    );
  if (quiet) return styles[0];
  const best = await registry().bestSnapshot(styles[0].name);
  const style = best ?? styles[0];
  const others =
    styles.length > 1
      ? ` (also: ${styles
          .slice(1)
          .map((s) => s.name)
          .join(', ')})`
      : '';
  say(
    `${flag}: ${style.name}${style.epoch === undefined ? '' : ` epoch ${style.epoch}`}${best ? ' (its best-scored snapshot)' : ''} (${shown(style.path)}), fine-tuned from ${baseName}${others}; give ${flag} to use another`,
  );
  return style;
}

/** `value` when given, else the default style's file. */
export async function styleModelFile(
  value: string | undefined,
  baseFile: string,
  flag: string,
): Promise<string> {
  return value === undefined ? (await defaultStyleModel(baseFile, flag)).path : modelFile(value);
}

/** Every snapshot of the default style of `baseFile`, by epoch. */
export async function defaultSnapshotFiles(baseFile: string, flag: string): Promise<string[]> {
  const style = await defaultStyleModel(baseFile, flag, true);
  const snapshots = await registry().snapshots(style.name);
  if (snapshots.length === 0) snapshots.push(style);
  say(
    `${flag}: the ${snapshots.length} snapshot${snapshots.length > 1 ? 's' : ''} of ${style.name} (fine-tuned from ${await nameOf(baseFile)}${snapshots[0].epoch === undefined ? '' : `, epochs ${snapshots.map((s) => s.epoch).join(', ')}`}); give ${flag} to use others`,
  );
  return snapshots.map((s) => s.path);
}
