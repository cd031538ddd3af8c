// Reading hostile inputs: each crafted archive must end in a clear DatasetError or a per-entry
// skip with a reason, without inflating more than the limits allow.
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DatasetError } from '../../src/datasets/errors.ts';
import { openInput } from '../../src/datasets/input.ts';
import { type ArchiveLimits, DEFAULT_LIMITS, resolveLimits } from '../../src/datasets/limits.ts';
import type { SourceItem } from '../../src/datasets/source.ts';
import { blockPicture, buildTar, tempFolder } from './helpers/fixtures.ts';
import { buildZip } from './helpers/zip-writer.ts';

let tmp: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  tmp = await tempFolder();
});
afterEach(async () => {
  await tmp.cleanup();
});

async function writeInput(name: string, data: Buffer): Promise<string> {
  const path = join(tmp.path, name);
  await writeFile(path, data);
  return path;
}

async function readAll(path: string, limits: Partial<ArchiveLimits> = {}): Promise<SourceItem[]> {
  const source = await openInput(path, resolveLimits(limits));
  const items: SourceItem[] = [];
  for await (const item of source.items()) items.push(item);
  return items;
}

const verdicts = (items: SourceItem[]) =>
  Object.fromEntries(items.map((item) => [item.name, item.kind === 'file' ? 'file' : item.status]));

const MiB = 2 ** 20;

describe('zip input', () => {
  it('reads image entries and skips directories and macOS metadata', async () => {
    const picture = await blockPicture(1);
    const zip = await writeInput(
      'ok.zip',
      buildZip([
        { name: 'faces/', data: '' },
        { name: 'faces/a.png', data: picture },
        { name: 'faces/b.png', data: picture, method: 'store' },
        { name: '__MACOSX/faces/._a.png', data: 'resource fork' },
      ]),
    );
    const items = await readAll(zip);
    expect(verdicts(items)).toEqual({ 'faces/a.png': 'file', 'faces/b.png': 'file' });
    const first = items[0];
    expect(first.kind === 'file' && first.data.equals(picture)).toBe(true);
  });

  it('skips a highly compressible entry over the per-file limit without inflating it', async () => {
    const bomb = Buffer.alloc(20 * MiB);
    const zip = await writeInput('bomb.zip', buildZip([{ name: 'bomb.png', data: bomb }]));
    const items = await readAll(zip, { maxFileBytes: 1 * MiB });
    expect(items).toEqual([
      { kind: 'skipped', name: 'bomb.png', status: 'too-large', reason: '20.0 MiB > 1.0 MiB' },
    ]);
  });

  it('skips an entry whose compression ratio is a zip bomb', async () => {
    const zip = await writeInput('bomb.zip', buildZip([{ name: 'bomb.png', data: Buffer.alloc(20 * MiB) }]));
    const [item] = await readAll(zip);
    expect(item).toMatchObject({ status: 'suspicious-compression' });
    expect(item.kind === 'skipped' && item.reason).toMatch(/compresses \d+:1, more than the 100:1 limit/);
  });

  it('stops reading an entry that inflates past the size its header declares', async () => {
    const zip = await writeInput(
      'liar.zip',
      buildZip([{ name: 'liar.png', data: Buffer.alloc(5 * MiB), declaredSize: 1000 }]),
    );
    const [item] = await readAll(zip);
    expect(item).toMatchObject({ kind: 'skipped', status: 'unreadable' });
    expect(item.kind === 'skipped' && item.reason).toMatch(/damaged entry: too many bytes/);
  });

  it('refuses an archive whose entries together exceed the total limit before reading any', async () => {
    const zip = await writeInput(
      'big.zip',
      buildZip([0, 1, 2].map((i) => ({ name: `${i}.png`, data: Buffer.alloc(400 * 1024, i) }))),
    );
    await expect(openInput(zip, resolveLimits({ maxTotalBytes: 1 * MiB }))).rejects.toThrow(
      /expands to more than 1.0 MiB/,
    );
  });

  it('refuses entries that share their data (non-recursive zip bomb)', async () => {
    const zip = await writeInput(
      'overlap.zip',
      buildZip([
        { name: 'a.png', data: Buffer.alloc(1000, 7) },
        { name: 'b.png', sharesDataOf: 0 },
        { name: 'c.png', sharesDataOf: 0 },
      ]),
    );
    await expect(openInput(zip, resolveLimits())).rejects.toThrow(/share their data/);
  });

  it('skips ../ paths, absolute paths and drive letters', async () => {
    const picture = await blockPicture(2);
    const zip = await writeInput(
      'traversal.zip',
      buildZip([
        { name: '../../evil.png', data: picture },
        { name: 'faces/../../evil2.png', data: picture },
        { name: '/etc/evil.png', data: picture },
        { name: 'C:\\Windows\\evil.png', data: picture },
        { name: 'fine.png', data: picture },
      ]),
    );
    const items = await readAll(zip);
    expect(verdicts(items)).toEqual({
      '../../evil.png': 'unsafe-path',
      'faces/../../evil2.png': 'unsafe-path',
      '/etc/evil.png': 'unsafe-path',
      'C:/Windows/evil.png': 'unsafe-path',
      'fine.png': 'file',
    });
  });

  it('skips symlinks and special files, and encrypted entries', async () => {
    const zip = await writeInput(
      'links.zip',
      buildZip([
        { name: 'link.png', data: '/etc/passwd', unixMode: 0o120777 },
        { name: 'fifo.png', data: '', unixMode: 0o010644 },
        { name: 'secret.png', data: 'xxxx', encrypted: true },
        { name: 'plain.png', data: 'x', unixMode: 0o100644 },
      ]),
    );
    const items = await readAll(zip);
    expect(verdicts(items)).toEqual({
      'link.png': 'link',
      'fifo.png': 'link',
      'secret.png': 'encrypted',
      'plain.png': 'file',
    });
  });

  it('refuses 10,000 tiny entries from the central directory alone', async () => {
    const specs = Array.from({ length: 10_000 }, (_, i) => ({
      name: `tiny/${i}.png`,
      data: 'x',
      method: 'store' as const,
    }));
    const zip = await writeInput('many.zip', buildZip(specs));
    const started = performance.now();
    const err = await openInput(zip, resolveLimits()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).message).toBe(
      `the input has more than ${DEFAULT_LIMITS.maxEntries} entries`,
    );
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('skips nested archives by name without reading them', async () => {
    const inner = buildZip([{ name: 'x.png', data: 'x' }]);
    const zip = await writeInput(
      'nested.zip',
      buildZip([
        { name: 'inner.zip', data: inner },
        { name: 'more.tar.gz', data: 'x' },
      ]),
    );
    expect(verdicts(await readAll(zip))).toEqual({
      'inner.zip': 'nested-archive',
      'more.tar.gz': 'nested-archive',
    });
  });

  it('reads an empty archive as no entries, and refuses files that are not archives', async () => {
    expect(await readAll(await writeInput('empty.zip', buildZip([])))).toEqual([]);
    await expect(
      openInput(await writeInput('notes.zip', Buffer.from('just text')), resolveLimits()),
    ).rejects.toThrow(/not a zip or tar archive/);
    const truncated = buildZip([{ name: 'a.png', data: 'abc' }]).subarray(0, 40);
    await expect(openInput(await writeInput('cut.zip', truncated), resolveLimits())).rejects.toThrow(
      DatasetError,
    );
  });
});

describe('tar input', () => {
  it('reads files and skips traversal, links and nested archives', async () => {
    const picture = await blockPicture(3);
    const tgz = await writeInput(
      'mixed.tar.gz',
      await buildTar([
        { name: 'faces', type: 'directory' },
        { name: 'faces/a.png', data: picture },
        { name: '../evil.png', data: picture },
        { name: '/abs.png', data: picture },
        { name: 'faces/link.png', type: 'symlink', linkname: '/etc/passwd' },
        { name: 'faces/hard.png', type: 'link', linkname: 'faces/a.png' },
        { name: 'inner.zip', data: 'PK' },
        { name: 'faces/b.png', data: picture },
      ]),
    );
    expect(verdicts(await readAll(tgz))).toEqual({
      'faces/a.png': 'file',
      '../evil.png': 'unsafe-path',
      '/abs.png': 'unsafe-path',
      'faces/link.png': 'link',
      'faces/hard.png': 'link',
      'inner.zip': 'nested-archive',
      'faces/b.png': 'file',
    });
  });

  it('stops a gzip bomb by the stream-wide compression ratio', async () => {
    const tgz = await writeInput(
      'bomb.tar.gz',
      await buildTar([{ name: 'zeros.png', data: Buffer.alloc(30 * MiB) }]),
    );
    await expect(readAll(tgz, { maxFileBytes: 64 * MiB })).rejects.toThrow(/inflates more than 100:1/);
  });

  it('counts skipped bytes against the total limit', async () => {
    const tgz = await writeInput(
      'big.tar.gz',
      await buildTar([0, 1, 2, 3].map((i) => ({ name: `${i}.png`, data: Buffer.alloc(2 * MiB, i) }))),
    );
    await expect(
      readAll(tgz, { maxFileBytes: 1 * MiB, maxTotalBytes: 5 * MiB, maxCompressionRatio: 1e6 }),
    ).rejects.toThrow(/expands to more than 5.0 MiB/);
  });

  it('refuses too many entries while streaming', async () => {
    const tar = await writeInput(
      'many.tar',
      await buildTar(
        Array.from({ length: 300 }, (_, i) => ({ name: `${i}.png`, data: 'x' })),
        false,
      ),
    );
    await expect(readAll(tar, { maxEntries: 100 })).rejects.toThrow('the input has more than 100 entries');
  });

  it('reports a damaged gzip stream as a DatasetError', async () => {
    const tgz = await buildTar([{ name: 'a.png', data: await blockPicture(4) }]);
    const broken = await writeInput('broken.tar.gz', tgz.subarray(0, Math.floor(tgz.length / 2)));
    await expect(readAll(broken)).rejects.toThrow(/damaged tar.gz file/);
  });
});

describe('folder input', () => {
  it('reads files in sorted order and never follows links', async () => {
    const root = join(tmp.path, 'photos');
    await mkdir(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'b.png'), await blockPicture(5));
    await writeFile(join(root, 'sub', 'a.png'), await blockPicture(6));
    await writeFile(join(root, '.DS_Store'), 'x');
    await writeFile(join(tmp.path, 'outside.png'), await blockPicture(7));
    await symlink(join(tmp.path, 'outside.png'), join(root, 'link.png'));
    await symlink(tmp.path, join(root, 'linkdir'));
    const items = await readAll(root);
    expect(items.map((i) => [i.name, i.kind === 'file' ? 'file' : i.status])).toEqual([
      ['b.png', 'file'],
      ['link.png', 'link'],
      ['linkdir', 'link'],
      ['sub/a.png', 'file'],
    ]);
  });

  it('skips files over the per-file limit', async () => {
    const root = join(tmp.path, 'photos');
    await mkdir(root);
    await writeFile(join(root, 'huge.png'), Buffer.alloc(2 * MiB));
    expect(verdicts(await readAll(root, { maxFileBytes: 1 * MiB }))).toEqual({ 'huge.png': 'too-large' });
  });
});
