// The demo training sets (`facestyle demo data`): the same seed gives the same bytes, every image
// is a different person, and the CLI writes the counts and sizes it is asked for.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoFacePerson, renderDemoFace } from '../../src/demo/data.ts';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '../../bin/facestyle.js');
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'facestyle-demo-data-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

async function pngHashes(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.png')).sort();
  return Promise.all(names.map(async (n) => sha(await readFile(join(dir, n)))));
}

describe('facestyle demo data', () => {
  it('renders the faces set at --res, the same bytes for the same seed and others for another', async () => {
    const [a, b, c] = ['a', 'b', 'c'].map((n) => join(tmp, n));
    const first = await cli('demo', 'data', '--out', a, '--count', '6', '--res', '32', '--seed', '3');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('wrote 6 faces images, 32x32, seed 3');
    expect((await cli('demo', 'data', '--out', b, '--count', '6', '--res', '32', '--seed', '3')).code).toBe(
      0,
    );
    expect((await cli('demo', 'data', '--out', c, '--count', '6', '--res', '32', '--seed', '4')).code).toBe(
      0,
    );
    const [ha, hb, hc] = await Promise.all([a, b, c].map(pngHashes));
    expect(ha).toHaveLength(6);
    expect(hb).toEqual(ha);
    expect(hc.filter((h) => ha.includes(h))).toEqual([]);
    for (const name of (await readdir(a)).filter((n) => n.endsWith('.png'))) {
      const meta = await sharp(join(a, name)).metadata();
      expect([meta.width, meta.height, meta.format]).toEqual([32, 32, 'png']);
    }
    expect(await readFile(join(a, 'LICENSE.txt'), 'utf8')).toContain('--seed 3 --count 6 --res 32');
  }, 300_000);

  it('renders a DiceBear style set in its own look', async () => {
    const dir = join(tmp, 'lorelei');
    const result = await cli('demo', 'data', '--out', dir, '--set', 'lorelei', '--count', '4', '--res', '16');
    expect(result.code).toBe(0);
    expect(await pngHashes(dir)).toHaveLength(4);
    expect((await sharp(join(dir, '000003.png')).metadata()).width).toBe(16);
    expect(sha(await renderDemoFace('lorelei', 0, 16))).not.toBe(sha(await renderDemoFace('faces', 0, 16)));
  }, 300_000);

  it('refuses an unknown set or a bad count with a clear error and writes nothing', async () => {
    const dir = join(tmp, 'refused');
    const unknown = await cli('demo', 'data', '--out', dir, '--set', 'ffhq');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('--set must be faces or one of lorelei');
    const zero = await cli('demo', 'data', '--out', dir, '--count', '0');
    expect(zero.code).toBe(1);
    expect(zero.stderr).toContain('--count must be a whole number of at least 1');
    await expect(readdir(dir)).rejects.toThrow(/ENOENT/);
  }, 300_000);
});

describe('the faces set', () => {
  it('has 500 different people among its first 500, half women, with glasses, beards and hats', () => {
    const people = Array.from({ length: 500 }, (_, i) => demoFacePerson(i));
    expect(new Set(people.map((p) => JSON.stringify(p))).size).toBe(500);
    const share = (f: (p: (typeof people)[number]) => boolean) => people.filter(f).length / people.length;
    // generate() with no gender draws only men; the set draws both. Only women get facesjs's
    // "female" heads and hair, and about 70% of them do (so half women shows as about 0.35).
    const womanOnly = share((p) => /female/.test(p.head.id + p.hair.id));
    expect(womanOnly).toBeGreaterThan(0.25);
    expect(womanOnly).toBeLessThan(0.45);
    expect(share((p) => p.glasses.id !== 'none')).toBeGreaterThan(0.15);
    expect(share((p) => p.facialHair.id !== 'none')).toBeGreaterThan(0.15);
    expect(share((p) => p.accessories.id !== 'none')).toBeGreaterThan(0.1);
    expect(new Set(people.map((p) => p.body.color)).size).toBeGreaterThan(10);
    expect(people.some((p) => p.glasses.id === 'facemask')).toBe(false);
  });

  it('renders 40 people as 40 different images, each the same again on a second render', async () => {
    const hashes = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => sha(await renderDemoFace('faces', i, 32))),
    );
    expect(new Set(hashes).size).toBe(40);
    expect(sha(await renderDemoFace('faces', 7, 32))).toBe(hashes[7]);
  }, 120_000);
});
