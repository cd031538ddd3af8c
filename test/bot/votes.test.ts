// Votes: one per member per result, toggled, consistent under concurrent clicks from several
// processes, kept across restarts; the per-guild leaderboard.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type ResultRecord, VoteStore } from '../../src/store/votes.ts';

const dir = mkdtempSync(join(tmpdir(), 'facestyle-votes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TOGGLER = fileURLToPath(new URL('./fixtures/toggle-votes.ts', import.meta.url));

function result(resultId: string, fields: Partial<ResultRecord> = {}): ResultRecord {
  return {
    resultId,
    guildId: 'g1',
    channelId: 'c1',
    authorId: 'author',
    kind: 'generate',
    title: resultId,
    createdAt: Date.now(),
    ...fields,
  };
}

describe('VoteStore', () => {
  it('toggles one vote per member and keeps it across a reopen', () => {
    const file = join(dir, 'toggle.sqlite');
    let store = VoteStore.open(file);
    store.registerResult(result('r1'));
    expect(store.toggle('r1', 'm1')).toEqual({ voted: true, votes: 1 });
    expect(store.toggle('r1', 'm2')).toEqual({ voted: true, votes: 2 });
    expect(store.toggle('r1', 'm1')).toEqual({ voted: false, votes: 1 });
    store.close();
    store = VoteStore.open(file);
    expect(store.count('r1')).toBe(1);
    expect(store.toggle('r1', 'm2')).toEqual({ voted: false, votes: 0 });
    store.close();
  });

  it('refuses votes on unknown results and on your own', () => {
    const store = VoteStore.open(':memory:');
    store.registerResult(result('r1'));
    expect(() => store.toggle('nope', 'm1')).toThrow('this result is no longer in the vote records');
    expect(() => store.toggle('r1', 'author')).toThrow('you cannot vote for your own result');
    expect(store.count('r1')).toBe(0);
    store.close();
  });

  it("counts a vote only from the result's own server", () => {
    const store = VoteStore.open(':memory:');
    store.registerResult(result('r1', { guildId: 'A' }));
    expect(() => store.toggle('r1', 'm1', Date.now(), 'B')).toThrow('this result belongs to another server');
    expect(store.count('r1')).toBe(0);
    expect(store.topResults('B')).toEqual([]);
    expect(store.toggle('r1', 'm1', Date.now(), 'A')).toEqual({ voted: true, votes: 1 });
    expect(store.topResults('A').map((r) => r.resultId)).toEqual(['r1']);
    store.close();
  });

  it('stays consistent when three processes toggle the same members at the same moment', async () => {
    const file = join(dir, 'race.sqlite');
    const store = VoteStore.open(file);
    store.registerResult(result('race'));
    const members = Array.from({ length: 40 }, (_, i) => `m${i}`);
    const children: ChildProcess[] = [0, 1, 2].map((k) =>
      // Each process clicks in another order, so the same member is toggled concurrently.
      spawn(
        process.execPath,
        ['--import', 'tsx', TOGGLER, file, 'race', ...(k === 1 ? [...members].reverse() : members)],
        {
          stdio: ['pipe', 'pipe', 'inherit'],
        },
      ),
    );
    const outputs = children.map(
      (child) =>
        new Promise<string>((resolve, reject) => {
          let out = '';
          child.stdout!.on('data', (chunk) => {
            out += chunk;
          });
          child.on('exit', (code) =>
            code === 0 ? resolve(out) : reject(new Error(`toggler exited with ${code}`)),
          );
        }),
    );
    await Promise.all(
      children.map((child) => new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()))),
    );
    for (const child of children) child.stdin!.write('go\n');
    const outcomes = (await Promise.all(outputs)).flatMap(
      (out) => JSON.parse(out.slice(out.indexOf('\n') + 1)) as Array<{ member: string; voted: boolean }>,
    );
    expect(outcomes).toHaveLength(120);
    // Three toggles per member: on, off, on in some order; never two "on"s in a row.
    for (const member of members) {
      const votedCount = outcomes.filter((o) => o.member === member && o.voted).length;
      expect(votedCount).toBe(2);
    }
    expect(store.count('race')).toBe(40);
    store.close();
  }, 30_000);

  it('ranks results and creators per guild and period', () => {
    const store = VoteStore.open(':memory:');
    const old = Date.now() - 30 * 86_400_000;
    store.registerResult(result('a', { authorId: 'ann', messageId: 'msg-a' }));
    store.registerResult(result('b', { authorId: 'ben' }));
    store.registerResult(result('c', { authorId: 'ann', createdAt: old }));
    store.registerResult(result('other-guild', { guildId: 'g2' }));
    for (const member of ['v1', 'v2']) store.toggle('b', member);
    store.toggle('a', 'v1');
    for (const member of ['v1', 'v2', 'v3']) store.toggle('c', member);
    store.toggle('other-guild', 'v1');

    expect(store.topResults('g1').map((r) => [r.resultId, r.votes])).toEqual([
      ['c', 3],
      ['b', 2],
      ['a', 1],
    ]);
    const lastWeek = store.topResults('g1', { since: Date.now() - 7 * 86_400_000 });
    expect(lastWeek.map((r) => r.resultId)).toEqual(['b', 'a']);
    expect(lastWeek[1].messageId).toBe('msg-a');
    expect(store.topCreators('g1')).toEqual([
      { authorId: 'ann', votes: 4, results: 2 },
      { authorId: 'ben', votes: 2, results: 1 },
    ]);
    store.close();
  });
});
