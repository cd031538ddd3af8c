// JobStore on each store the configuration allows: SQLite (a temporary file), Redis and PostgreSQL
// (the local services; the suite fails when they are down unless FACESTYLE_SKIP_SERVICES=1).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobStore } from '../../src/jobs/job-store.ts';
import type { JobRecord } from '../../src/jobs/types.ts';
import { defaultStoreUrl, redactUrl, storeKind } from '../../src/store/keyv.ts';

const dir = mkdtempSync(join(tmpdir(), 'facestyle-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const skipServices = process.env.FACESTYLE_SKIP_SERVICES === '1';

const stores: Array<{ name: string; url: string; service: boolean }> = [
  { name: 'sqlite', url: defaultStoreUrl(dir), service: false },
  { name: 'redis', url: process.env.FACESTYLE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', service: true },
  {
    name: 'postgres',
    url: process.env.FACESTYLE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    service: true,
  },
];

function record(id: string, fields: Partial<JobRecord> = {}): JobRecord {
  return {
    id,
    kind: 'noop',
    lane: 'short',
    priority: 10,
    status: 'queued',
    payload: { n: 1 },
    userId: 'u1',
    meta: { channel: 'c1' },
    createdAt: 1_000,
    attempt: 0,
    maxAttempts: 2,
    timeLimitMs: 1_000,
    units: 1,
    history: [],
    ...fields,
  };
}

for (const { name, url, service } of stores) {
  describe.skipIf(service && skipServices)(`JobStore on ${name}`, () => {
    let store: JobStore;
    let other: JobStore;
    const namespace = `fstest-${process.pid}-${Date.now().toString(36)}`;

    beforeAll(async () => {
      store = await JobStore.open(url, namespace);
      other = await JobStore.open(url, `${namespace}-other`);
    });
    afterAll(async () => {
      await store?.destroy();
      await other?.destroy();
      await store?.close();
      await other?.close();
    });

    it('stores records, applies writes in call order, and lists them by namespace', async () => {
      const writes = [];
      for (const status of ['queued', 'running', 'completed'] as const) {
        writes.push(
          store.put(record('a', { status, result: status === 'completed' ? { ok: 1 } : undefined })),
        );
      }
      // No await between the writes and the read: the read still sees the last write.
      expect((await store.get('a'))?.status).toBe('completed');
      await Promise.all(writes);
      await store.put(record('b'));
      await other.put(record('z'));
      expect((await store.all()).map((r) => r.id).sort()).toEqual(['a', 'b']);
      expect((await store.unfinished()).map((r) => r.id)).toEqual(['b']);
      expect(await store.get('a')).toMatchObject({ meta: { channel: 'c1' }, result: { ok: 1 } });
      expect(await store.get('missing')).toBeUndefined();
    });

    it('prunes finished records older than the cut-off only', async () => {
      await store.put(record('old', { status: 'failed', finishedAt: 5_000 }));
      await store.put(record('new', { status: 'completed', finishedAt: 50_000 }));
      await store.put(record('waiting', { createdAt: 1 }));
      // 'old' ended at 5 s; 'a' (finished, no end time) was created at 1 s; 'b' has not finished.
      expect(await store.pruneFinished(10_000)).toBe(2);
      expect((await store.all()).map((r) => r.id).sort()).toEqual(['b', 'new', 'waiting']);
    });

    it('counts submissions per user and day, keeping cooldown times across days', async () => {
      await store.recordSubmission('u1', 'generate', '2024-05-01', 100);
      await Promise.all([
        store.recordSubmission('u1', 'generate', '2024-05-01', 200),
        store.recordSubmission('u1', 'blend', '2024-05-01', 300),
      ]);
      expect(await store.usageOf('u1', '2024-05-01')).toEqual({
        day: '2024-05-01',
        counts: { generate: 2, blend: 1 },
        lastAt: { generate: 200, blend: 300 },
      });
      expect(await store.usageOf('u1', '2024-05-02')).toEqual({
        day: '2024-05-02',
        counts: {},
        lastAt: { generate: 200, blend: 300 },
      });
      expect((await store.usageOf('u2', '2024-05-01')).counts).toEqual({});
    });

    it('keeps duration averages, cancel requests and the owner lease', async () => {
      await Promise.all([
        store.saveAverage('generate', { mean: 1.5, samples: 3 }),
        store.saveAverage('blend', { mean: 4, samples: 1 }),
      ]);
      expect(await store.averages()).toEqual({
        generate: { mean: 1.5, samples: 3 },
        blend: { mean: 4, samples: 1 },
      });
      await store.requestCancel({ id: 'b', by: 'admin op', at: 7 });
      expect(await store.cancelRequests()).toEqual([{ id: 'b', by: 'admin op', at: 7 }]);
      await store.clearCancelRequest('b');
      expect(await store.cancelRequests()).toEqual([]);
      await store.renewOwner();
      expect(await store.owner()).toMatchObject({ pid: process.pid });
      await store.releaseOwner();
      expect(await store.owner()).toBeUndefined();
    });
  });
}

describe('store URLs', () => {
  it('recognises the supported stores and refuses others with the password hidden', () => {
    expect(storeKind('sqlite:///tmp/x.sqlite')).toBe('sqlite');
    expect(storeKind('rediss://h:6380')).toBe('redis');
    expect(storeKind('postgresql://u@h/db')).toBe('postgres');
    expect(() => storeKind('mysql://root:secret@h/db')).toThrow(
      /unsupported store URL "mysql:\/\/root:\*\*\*@h\/db"/,
    );
    expect(redactUrl('postgres://u:pw@h/db')).toBe('postgres://u:***@h/db');
  });
});
