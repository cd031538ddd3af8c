// Option parsing shared by every `facestyle` command and benchmark: one number parser, one set of
// architecture flags (the names of NVlabs' networks: channel_base, channel_max, mapping layers,
// z_dim, w_dim), and output paths whose extension says what gets written.
import { extname } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../errors.ts';
import type { ImageFormat } from '../images/encode.ts';

export interface NumberRule {
  integer?: boolean;
  /** Smallest value allowed (default 0). */
  min?: number;
  max?: number;
}

/** `value` of `flag` as a number within the rule, or a UserError that names the flag. */
export function parseNumber(
  flag: string,
  value: string,
  { integer = false, min = 0, max }: NumberRule = {},
): number {
  const n = Number(value);
  const inRange = n >= min && (max === undefined || n <= max);
  if (value.trim() === '' || !Number.isFinite(n) || !inRange || (integer && !Number.isInteger(n))) {
    const range = max === undefined ? `of at least ${min}` : `from ${min} to ${max}`;
    throw new UserError(
      `${flag} must be ${integer ? 'a whole number' : 'a number'} ${range}, got "${value}"`,
    );
  }
  return n;
}

/** A whole number >= 1. */
export function positiveInt(flag: string, value: string): number {
  return parseNumber(flag, value, { integer: true, min: 1 });
}

/** The architecture flags as commander stores them (strings, with defaults). */
export interface ArchitectureFlags {
  channelBase: string;
  channelMax: string;
  mappingLayers: string;
  zDim: string;
  wDim: string;
}

export interface Architecture {
  channelBase: number;
  channelMax: number;
  mappingLayers: number;
  zDim: number;
  wDim: number;
}

/** paper256 (stylegan2-ada-pytorch's config for FFHQ 256), the default of every command. */
export const PAPER256: Architecture = {
  channelBase: 16384,
  channelMax: 512,
  mappingLayers: 8,
  zDim: 512,
  wDim: 512,
};

/**
 * Adds --channel-base, --channel-max, --mapping-layers, --z-dim and --w-dim to `command`, the one
 * spelling every command and benchmark uses. `context` prefixes the help ("from scratch: ").
 */
export function addArchitectureOptions(
  command: Command,
  defaults: Partial<Architecture> = {},
  context = '',
): Command {
  const d = { ...PAPER256, ...defaults };
  return command
    .option('--channel-base <n>', `${context}channel base (paper256: 16384)`, String(d.channelBase))
    .option('--channel-max <n>', `${context}channel max (paper256: 512)`, String(d.channelMax))
    .option('--mapping-layers <n>', `${context}mapping layers (paper256: 8)`, String(d.mappingLayers))
    .option('--z-dim <n>', `${context}z size`, String(d.zDim))
    .option('--w-dim <n>', `${context}w size`, String(d.wDim));
}

export function parseArchitecture(flags: ArchitectureFlags): Architecture {
  return {
    channelBase: positiveInt('--channel-base', flags.channelBase),
    channelMax: positiveInt('--channel-max', flags.channelMax),
    mappingLayers: positiveInt('--mapping-layers', flags.mappingLayers),
    zDim: positiveInt('--z-dim', flags.zDim),
    wDim: positiveInt('--w-dim', flags.wDim),
  };
}

const IMAGE_FORMATS: Record<string, ImageFormat> = {
  '.png': 'png',
  '.webp': 'webp',
  '.jpg': 'jpeg',
  '.jpeg': 'jpeg',
};

/**
 * The image format `--out` asks for by its extension (PNG when it has none), or a UserError for
 * an extension that is no image format this tool writes: a grid is never written under a name
 * that says something else.
 */
export function imageFormatOf(path: string): ImageFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '') return 'png';
  const format = IMAGE_FORMATS[ext];
  if (!format)
    throw new UserError(
      `--out ${path}: "${ext}" is not an image format this command writes`,
      'name the file .png, .webp or .jpg',
    );
  return format;
}

/** Refuses an --out whose extension is not .safetensors: checkpoints go only under that name. */
export function checkpointOutput(path: string, command: string): string {
  const ext = extname(path).toLowerCase();
  if (ext === '.safetensors') return path;
  if (ext in IMAGE_FORMATS)
    throw new UserError(
      `--out ${path}: ${command} writes a model checkpoint (.safetensors), not an image`,
      `name it .safetensors; for a picture of the blend use \`facestyle grid compare ... --out ${path}\``,
    );
  throw new UserError(`--out ${path}: ${command} writes a model checkpoint: name it .safetensors`);
}
