// The keyv adapter over better-sqlite3 (src/store/sqlite-keyv.ts): it reads files written by the
// @keyv/sqlite adapter it replaced, keeps namespaces apart, and lists more entries than one page.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { closeKeyv, entriesOf, openKeyv } from '../../src/store/keyv.ts';

const dir = mkdtempSync(join(tmpdir(), 'facestyle-sqlite-keyv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('SqliteKeyvStore', () => {
  it('reads a job store written by @keyv/sqlite (same table, same key and value format)', async () => {
    const file = join(dir, 'old.sqlite');
    const db = new Database(file);
    // The exact statement @keyv/sqlite 4 runs, and a row as keyv 5 serialises it.
    db.exec('CREATE TABLE IF NOT EXISTS keyv(key VARCHAR(255) PRIMARY KEY, value TEXT )');
    db.prepare('INSERT INTO keyv (key, value) VALUES (?, ?)').run(
      'facestyle-jobs:job-1',
      JSON.stringify({ value: { id: 'job-1', status: 'done' }, expires: null }),
    );
    db.close();
    const keyv = openKeyv<{ id: string; status: string }>(`sqlite://${file}`, 'facestyle-jobs');
    expect(await keyv.get('job-1')).toEqual({ id: 'job-1', status: 'done' });
    await keyv.set('job-2', { id: 'job-2', status: 'queued' });
    await keyv.set('job-0', { id: 'job-0', status: 'queued' });
    await keyv.set('job-1', { id: 'job-1', status: 'running' });
    // Listed in the order first written (as @keyv/sqlite did), not by key: queue order builds on it.
    expect((await entriesOf(keyv)).map(([key]) => key)).toEqual(['job-1', 'job-2', 'job-0']);
    expect(await keyv.get('job-1')).toEqual({ id: 'job-1', status: 'running' });
    await closeKeyv(keyv);
  });

  it('keeps namespaces apart, even ones LIKE would confuse (_ and %)', async () => {
    const url = `sqlite://${join(dir, 'ns.sqlite')}`;
    const a = openKeyv<number>(url, 'a_b');
    const b = openKeyv<number>(url, 'axb');
    await a.set('k', 1);
    await b.set('k', 2);
    await a.clear();
    expect(await a.get('k')).toBeUndefined();
    expect(await b.get('k')).toBe(2);
    expect(await entriesOf(b)).toEqual([['k', 2]]);
    expect(await b.delete('k')).toBe(true);
    expect(await b.delete('k')).toBe(false);
    await closeKeyv(a);
    await closeKeyv(b);
  });

  it('lists every entry over several pages, and drops expired ones while listing', async () => {
    const keyv = openKeyv<number>(`sqlite://${join(dir, 'many.sqlite')}`, 'many');
    for (let i = 0; i < 1203; i++) await keyv.set(`k${String(i).padStart(5, '0')}`, i);
    await keyv.set('short-lived', -1, 1);
    await new Promise((resolve) => setTimeout(resolve, 10));
    const entries = await entriesOf(keyv);
    expect(entries).toHaveLength(1203);
    expect(entries.at(-1)).toEqual(['k01202', 1202]);
    expect(await keyv.has('short-lived')).toBe(false);
    await closeKeyv(keyv);
  });
});
