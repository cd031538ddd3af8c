import { describe, expect, it } from 'vitest';
import { WarmCache } from '../../src/jobs/warm-cache.ts';

describe('WarmCache', () => {
  it('loads once per key, shares concurrent loads, and disposes the least recently used first', async () => {
    const loads: string[] = [];
    const disposed: string[] = [];
    const cache = new WarmCache<string>(2, (value) => {
      disposed.push(value);
    });
    const load = (key: string) => async () => {
      loads.push(key);
      await new Promise((resolve) => setTimeout(resolve, 5));
      return `model:${key}`;
    };
    const [a1, a2] = await Promise.all([cache.get('a', load('a')), cache.get('a', load('a'))]);
    expect([a1, a2]).toEqual(['model:a', 'model:a']);
    await cache.get('b', load('b'));
    await cache.get('a', load('a')); // a is now the most recently used
    await cache.get('c', load('c')); // evicts b, not a
    expect(loads).toEqual(['a', 'b', 'c']);
    expect(disposed).toEqual(['model:b']);
    expect(cache.has('a')).toBe(true);
    expect(cache.has('b')).toBe(false);
    await cache.clear();
    expect(disposed.sort()).toEqual(['model:a', 'model:b', 'model:c']);
    expect(cache.size).toBe(0);
  });

  it('forgets a failed load so the next request retries it', async () => {
    const cache = new WarmCache<number>(1);
    await expect(cache.get('x', async () => Promise.reject(new Error('file missing')))).rejects.toThrow(
      'file missing',
    );
    expect(cache.has('x')).toBe(false);
    expect(await cache.get('x', async () => 7)).toBe(7);
  });

  it('never disposes a leased entry: a job that needs more models than the capacity keeps them all', async () => {
    const disposed: string[] = [];
    const cache = new WarmCache<string>(2, (value) => {
      disposed.push(value);
    });
    const load = (key: string) => async () => `model:${key}`;
    const leases = [];
    for (const key of ['base', 's1', 's2', 's3']) leases.push(await cache.lease(key, load(key)));
    expect(disposed).toEqual([]);
    expect(cache.size).toBe(4);
    // Nor the entry just asked for, while everything else is held.
    expect(await cache.get('other', load('other'))).toBe('model:other');
    expect(disposed).toEqual([]);
    // As the leases end, the cache shrinks back to its capacity, least recently used first among
    // what is no longer held: releasing base lets base and the unleased newcomer go.
    await leases[0].release();
    expect(disposed).toEqual(['model:base', 'model:other']);
    for (const lease of leases.slice(1)) await lease.release();
    await leases[0].release(); // a second release changes nothing
    expect(disposed).toEqual(['model:base', 'model:other', 'model:s1']);
    expect(cache.has('s2') && cache.has('s3')).toBe(true);
  });

  it('holds an entry while any of its leases is open', async () => {
    const disposed: string[] = [];
    const cache = new WarmCache<string>(1, (value) => {
      disposed.push(value);
    });
    const first = await cache.lease('a', async () => 'model:a');
    const second = await cache.lease('a', async () => 'model:a');
    await first.release();
    await cache.get('b', async () => 'model:b');
    expect(cache.has('a') && cache.has('b')).toBe(true);
    expect(disposed).toEqual([]);
    await second.release();
    expect(cache.has('a')).toBe(false);
    expect(disposed).toEqual(['model:a']);
  });

  it('rejects a capacity below one', () => {
    expect(() => new WarmCache(0)).toThrow(RangeError);
  });
});
