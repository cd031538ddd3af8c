// Key-value storage through keyv, chosen by URL: SQLite file (the default, under the data folder;
// our adapter over better-sqlite3 in sqlite-keyv.ts),
// Redis or PostgreSQL. Each namespace gets its own adapter instance: keyv adapters hold a single
// namespace, so two Keyv objects sharing one adapter would write into each other's.
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import KeyvPostgres from '@keyv/postgres';
import KeyvRedis from '@keyv/redis';
import Keyv from 'keyv';
import { UserError } from '../errors.ts';
import { SqliteKeyvStore } from './sqlite-keyv.ts';

export type StoreKind = 'sqlite' | 'redis' | 'postgres';

export function defaultStoreUrl(dataDir: string): string {
  return `sqlite://${join(resolve(dataDir), 'facestyle.sqlite')}`;
}

export function storeKind(url: string): StoreKind {
  if (url.startsWith('sqlite://')) return 'sqlite';
  if (/^rediss?:\/\//.test(url)) return 'redis';
  if (/^postgres(ql)?:\/\//.test(url)) return 'postgres';
  throw new UserError(
    `unsupported store URL "${redactUrl(url)}"`,
    'use sqlite:///path/to/file.sqlite, redis://host:6379 or postgres://user@host:5432/db',
  );
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
}

// Several adapters (one per namespace) on one file contend for its lock: give them time rather
// than fail at once.
const SQLITE_BUSY_TIMEOUT_MS = 10_000;

// biome-ignore lint/suspicious/noExplicitAny: keyv adapters are typed loosely by keyv itself
function adapterFor(url: string): any {
  switch (storeKind(url)) {
    case 'sqlite': {
      const file = url.slice('sqlite://'.length);
      if (file !== ':memory:') checkWritableSqlite(file);
      return new SqliteKeyvStore({ file, busyTimeoutMs: SQLITE_BUSY_TIMEOUT_MS });
    }
    case 'redis':
      return new KeyvRedis(url);
    case 'postgres':
      return new KeyvPostgres({ uri: url });
  }
}

/**
 * SQLite (in WAL mode, readers included) must write next to its file: a read-only data folder is
 * refused here, by name, rather than as SQLITE_CANTOPEN from deep inside the driver.
 */
function checkWritableSqlite(file: string): void {
  const folder = dirname(file);
  try {
    mkdirSync(folder, { recursive: true });
    accessSync(folder, constants.W_OK);
    if (existsSync(file)) accessSync(file, constants.R_OK | constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new UserError(
      `cannot open the job store ${file}: the data folder ${folder} is not writable (${code})`,
      'SQLite writes beside its file even to read it: use a data folder you can write to (--data-dir or FACESTYLE_DATA_DIR), or FACESTYLE_STORE_URL',
    );
  }
}

// @keyv/postgres keeps one connection pool per process for all its adapters, and fails if that
// pool is ended twice: it is ended when the last PostgreSQL keyv of the process closes.
let openPostgresKeyvs = 0;

/** A namespaced keyv on `url`; errors surface as rejected calls, not as process-level events. */
export function openKeyv<V>(url: string, namespace: string): Keyv<V> {
  const keyv = new Keyv<V>({ store: adapterFor(url), namespace, throwOnErrors: true });
  // keyv re-emits adapter errors; without a listener an EventEmitter 'error' would crash the process.
  keyv.on('error', () => {});
  if (keyv.store instanceof KeyvPostgres) openPostgresKeyvs++;
  return keyv;
}

/** Closes a keyv from `openKeyv` (its connection, or its share of the PostgreSQL pool). */
export async function closeKeyv(keyv: Keyv): Promise<void> {
  if (keyv.store instanceof KeyvPostgres) {
    openPostgresKeyvs--;
    if (openPostgresKeyvs > 0) return;
  }
  await keyv.disconnect();
}

/** Every entry of a namespace (keys without the namespace prefix). */
export async function entriesOf<V>(keyv: Keyv<V>): Promise<Array<[string, V]>> {
  if (!keyv.iterator) throw new Error('this keyv store cannot list its keys');
  const out: Array<[string, V]> = [];
  for await (const [key, value] of keyv.iterator(keyv.namespace)) out.push([key as string, value as V]);
  return out;
}

/** Enables SQLite's write-ahead log, so readers (the CLI) never block the writer (the bot). */
export async function tuneSqlite(keyv: Keyv): Promise<void> {
  if (keyv.store instanceof SqliteKeyvStore) await keyv.store.enableWriteAheadLog();
}
