// A dataset is identified by what went in: the upload's bytes and every option that changes the
// output. The same upload with the same options is the same dataset, so it is built once.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Bump when a change to the pipeline changes its output for the same input. */
export const PIPELINE_VERSION = 1;

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Folders are fingerprinted by their listing (paths, sizes, modification times) rather than by
 * content: reading every file twice would double the cost of a local build, and a folder is not
 * an upload that arrives again.
 */
async function fingerprintFolder(root: string): Promise<string> {
  const hash = createHash('sha256');
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  const lines: string[] = [];
  for (const entry of entries) {
    const path = join(entry.parentPath, entry.name);
    const info = await lstat(path).catch(() => null);
    lines.push(`${path.slice(root.length)}\0${info?.size ?? -1}\0${info?.mtimeMs ?? -1}`);
  }
  for (const line of lines.sort()) hash.update(`${line}\n`);
  return hash.digest('hex');
}

export async function inputFingerprint(input: string): Promise<string> {
  const info = await stat(input);
  return info.isDirectory()
    ? `folder:${await fingerprintFolder(input)}`
    : `sha256:${await sha256File(input)}`;
}

export function datasetKey(fingerprint: string, outputOptions: Record<string, unknown>): string {
  return createHash('sha256')
    .update(JSON.stringify({ fingerprint, pipeline: PIPELINE_VERSION, ...sortKeys(outputOptions) }))
    .digest('hex');
}

function sortKeys(value: Record<string, unknown>): Record<string, unknown> {
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const inner = value[key];
    sorted[key] =
      inner && typeof inner === 'object' && !Array.isArray(inner)
        ? sortKeys(inner as Record<string, unknown>)
        : inner;
  }
  return sorted;
}
