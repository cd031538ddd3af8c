// Keeps loaded models warm in the worker between jobs: at most `capacity` entries, the least
// recently used one disposed first. Concurrent requests for one key share a single load. Handlers
// clear it when the GPU runs out of memory (`registry.onOutOfMemory(() => cache.clear())`).
// An entry held by a lease is never evicted: a job that needs more models than the capacity (a
// blend matrix over many snapshots) must not see the first ones disposed under it; the cache
// shrinks back to its capacity as the leases end.

export interface Lease<V> {
  value: V;
  /** Ends the lease (once; later calls do nothing). */
  release(): Promise<void>;
}

export class WarmCache<V> {
  private readonly entries = new Map<string, Promise<V>>();
  private readonly leases = new Map<string, number>();

  constructor(
    private readonly capacity: number,
    private readonly dispose: (value: V, key: string) => void | Promise<void> = () => {},
  ) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  }

  /** The value for `key`, loading it on first use; a failed load is not kept. */
  async get(key: string, load: () => Promise<V>): Promise<V> {
    let entry = this.entries.get(key);
    if (entry) {
      // Re-inserting moves the key to the most recently used end of the Map's order.
      this.entries.delete(key);
      this.entries.set(key, entry);
      return entry;
    }
    entry = load();
    this.entries.set(key, entry);
    entry.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
    await this.evict(key);
    return entry;
  }

  /** `get`, and the entry stays loaded until `release` is called. */
  async lease(key: string, load: () => Promise<V>): Promise<Lease<V>> {
    this.leases.set(key, (this.leases.get(key) ?? 0) + 1);
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      const left = (this.leases.get(key) ?? 1) - 1;
      if (left > 0) this.leases.set(key, left);
      else this.leases.delete(key);
      await this.evict();
    };
    try {
      return { value: await this.get(key, load), release };
    } catch (err) {
      await release();
      throw err;
    }
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Disposes every entry. */
  async clear(): Promise<void> {
    const all = [...this.entries];
    this.entries.clear();
    await Promise.all(all.map(([key, entry]) => this.disposeEntry(key, entry)));
  }

  /** Down to the capacity, least recently used first, passing over leased entries and `keep`. */
  private async evict(keep?: string): Promise<void> {
    for (const [key, entry] of [...this.entries]) {
      if (this.entries.size <= this.capacity) return;
      if (key === keep || this.leases.has(key) || this.entries.get(key) !== entry) continue;
      this.entries.delete(key);
      await this.disposeEntry(key, entry);
    }
  }

  private async disposeEntry(key: string, entry: Promise<V>): Promise<void> {
    try {
      await this.dispose(await entry, key);
    } catch {
      // A failed load has nothing to dispose.
    }
  }
}
