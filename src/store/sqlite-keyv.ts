// A keyv storage adapter over better-sqlite3, the SQLite library the votes, contests and embedded
// queue already use: one native SQLite binding to install instead of two (@keyv/sqlite needs the
// `sqlite3` package). It keeps @keyv/sqlite's table (`keyv`: key = "namespace:key", value = the
// text keyv serialised), so job stores written before the switch open unchanged.
import { EventEmitter } from 'node:events';
import Database from 'better-sqlite3';

const TABLE = 'keyv';
/** Rows read per page while iterating: pages, not a cursor, so keyv may delete during the walk. */
const PAGE_ROWS = 500;

/**
 * better-sqlite3 answers synchronously; @keyv/sqlite answered from libuv's thread pool, so every
 * store call let the event loop turn. The job queues schedule work with setImmediate between store
 * calls (the embedded queue dispatches that way after each submit): each call here yields once
 * first, so a burst of store calls cannot hold that work back.
 */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface SqliteKeyvOptions {
  /** Database file, or ':memory:'. */
  file: string;
  /** How long a write waits for another connection's lock before failing (ms). */
  busyTimeoutMs?: number;
}

type Row = { key: string; value: string };

export class SqliteKeyvStore extends EventEmitter {
  /** keyv sets this to the Keyv's namespace; it lists only adapters whose dialect it knows. */
  namespace: string | undefined;
  readonly opts: { dialect: 'sqlite'; url: string };
  readonly ttlSupport = false;
  private connection: Database.Database | undefined;

  constructor(private readonly options: SqliteKeyvOptions) {
    super();
    this.opts = { dialect: 'sqlite', url: `sqlite://${options.file}` };
  }

  /** Opened on first use, so a bad path surfaces as a rejected call, like every other error. */
  private get db(): Database.Database {
    if (!this.connection) {
      const db = new Database(this.options.file, { timeout: this.options.busyTimeoutMs ?? 10_000 });
      db.exec(`CREATE TABLE IF NOT EXISTS ${TABLE}(key VARCHAR(255) PRIMARY KEY, value TEXT)`);
      this.connection = db;
    }
    return this.connection;
  }

  /** Write-ahead log: readers (the CLI) never block the writer (the bot). */
  async enableWriteAheadLog(): Promise<void> {
    await turn();
    if (this.options.file !== ':memory:') this.db.pragma('journal_mode = WAL');
  }

  async get(key: string): Promise<string | undefined> {
    await turn();
    const row = this.db.prepare(`SELECT value FROM ${TABLE} WHERE key = ?`).get(key) as Row | undefined;
    return row?.value;
  }

  async getMany(keys: string[]): Promise<Array<string | undefined>> {
    await turn();
    const rows = this.db
      .prepare(`SELECT key, value FROM ${TABLE} WHERE key IN (SELECT value FROM json_each(?))`)
      .all(JSON.stringify(keys)) as Row[];
    const byKey = new Map(rows.map((row) => [row.key, row.value]));
    return keys.map((key) => byKey.get(key));
  }

  async has(key: string): Promise<boolean> {
    await turn();
    return this.db.prepare(`SELECT 1 FROM ${TABLE} WHERE key = ?`).get(key) !== undefined;
  }

  async set(key: string, value: string): Promise<void> {
    await turn();
    this.db
      .prepare(
        `INSERT INTO ${TABLE} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
      )
      .run(key, value);
  }

  async delete(key: string): Promise<boolean> {
    await turn();
    return this.db.prepare(`DELETE FROM ${TABLE} WHERE key = ?`).run(key).changes > 0;
  }

  async deleteMany(keys: string[]): Promise<boolean> {
    await turn();
    const del = this.db.prepare(`DELETE FROM ${TABLE} WHERE key IN (SELECT value FROM json_each(?))`);
    return del.run(JSON.stringify(keys)).changes > 0;
  }

  /** Deletes this namespace's entries (every entry when there is no namespace). */
  async clear(): Promise<void> {
    await turn();
    if (!this.namespace) {
      this.db.prepare(`DELETE FROM ${TABLE}`).run();
      return;
    }
    // A prefix compare, not LIKE: '_' and '%' in a namespace must not match other namespaces.
    const prefix = `${this.namespace}:`;
    this.db.prepare(`DELETE FROM ${TABLE} WHERE substr(key, 1, ?) = ?`).run(prefix.length, prefix);
  }

  /**
   * Every [key, serialised value] of `namespace` (keys keep their prefix, as keyv expects), in the
   * order they were first written, as @keyv/sqlite listed them: the job store's readers rely on it.
   */
  async *iterator(namespace?: string): AsyncGenerator<[string, string]> {
    const prefix = namespace ? `${namespace}:` : '';
    const page = this.db.prepare(
      `SELECT rowid, key, value FROM ${TABLE} WHERE rowid > ? AND substr(key, 1, ?) = ? ORDER BY rowid LIMIT ?`,
    );
    let after = 0;
    for (;;) {
      await turn();
      const rows = page.all(after, prefix.length, prefix, PAGE_ROWS) as Array<Row & { rowid: number }>;
      for (const row of rows) yield [row.key, row.value];
      if (rows.length < PAGE_ROWS) return;
      after = rows[rows.length - 1].rowid;
    }
  }

  async disconnect(): Promise<void> {
    this.connection?.close();
    this.connection = undefined;
  }
}
