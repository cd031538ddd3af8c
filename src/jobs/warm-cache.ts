// Keeps loaded models warm in the worker between jobs: at most `capacity` entries, the least
// recently used one disposed first. Concurrent requests for one key share a single load. Handlers
// clear it when the GPU runs out of memory (`registry.onOutOfMemory(() => cache.clear())`).

export class WarmCache<V> {
  private readonly entries = new Map<string, Promise<V>>();

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
    await this.evict();
    return entry;
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

  private async evict(): Promise<void> {
    while (this.entries.size > this.capacity) {
      const [key, entry] = this.entries.entries().next().value as [string, Promise<V>];
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
