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

  it('rejects a capacity below one', () => {
    expect(() => new WarmCache(0)).toThrow(RangeError);
  });
});
