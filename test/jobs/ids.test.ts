// Job ids sort by creation, within one millisecond too: the queue breaks createdAt ties by id.
import { describe, expect, it } from 'vitest';
import { newJobId } from '../../src/jobs/ids.ts';

describe('newJobId', () => {
  it('sorts ids of one millisecond in the order they were made, and later ones after', () => {
    const now = Date.now();
    const ids = Array.from({ length: 50 }, () => newJobId(now));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    expect(newJobId(now + 1) > ids[ids.length - 1]).toBe(true);
    expect(ids[0]).toMatch(/^j[0-9a-z]+$/);
    expect(Number.isInteger(Number(ids[0]))).toBe(false);
  });
});
