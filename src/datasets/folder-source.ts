// A folder of images (given on the command line, or an upload already unpacked by someone else).
// Links are reported, never followed: a link could point anywhere on the machine.

import { lstat, opendir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { isSystemMetadata } from './entry-path.ts';
import { type ArchiveLimits, formatBytes } from './limits.ts';
import { looksLikeArchiveName } from './sniff.ts';
import { type InputSource, ReadBudget, type SourceItem, skipped } from './source.ts';

interface FolderFile {
  name: string;
  path: string;
  kind: 'file' | 'link' | 'special';
}

export async function openFolder(root: string, limits: ArchiveLimits): Promise<InputSource> {
  const budget = new ReadBudget(limits);
  const files: FolderFile[] = [];
  await walk(root, root, budget, files);
  return { format: 'folder', total: files.length, items: () => readFiles(files, budget, limits) };
}

async function walk(root: string, dir: string, budget: ReadBudget, out: FolderFile[]): Promise<void> {
  const children = [];
  for await (const dirent of await opendir(dir)) {
    budget.countEntries();
    children.push(dirent);
  }
  // Sorted, so that output numbering does not depend on the file system's order.
  children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const dirent of children) {
    const path = join(dir, dirent.name);
    const name = relative(root, path).split(sep).join('/');
    if (dirent.isDirectory()) await walk(root, path, budget, out);
    else if (isSystemMetadata(name)) continue;
    else
      out.push({ name, path, kind: dirent.isSymbolicLink() ? 'link' : dirent.isFile() ? 'file' : 'special' });
  }
}

async function* readFiles(
  files: FolderFile[],
  budget: ReadBudget,
  limits: ArchiveLimits,
): AsyncGenerator<SourceItem> {
  for (const { name, path, kind } of files) {
    if (kind === 'link') {
      yield skipped(name, 'link', 'symbolic link');
      continue;
    }
    if (kind === 'special') {
      yield skipped(name, 'link', 'special file');
      continue;
    }
    if (looksLikeArchiveName(name)) {
      yield skipped(name, 'nested-archive', 'archive inside the input folder');
      continue;
    }
    const { size } = await lstat(path);
    if (size > limits.maxFileBytes) {
      yield skipped(name, 'too-large', `${formatBytes(size)} > ${formatBytes(limits.maxFileBytes)}`);
      continue;
    }
    budget.countBytes(size);
    yield { kind: 'file', name, data: await readFile(path) };
  }
}
