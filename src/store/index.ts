/**
 * Opening the store named by the `store.url` setting: SQLite for a URL of the form
 * `sqlite:PATH`, `sqlite://PATH` or a bare file path, and PostgreSQL for `postgres://` or
 * `postgresql://` (several nodes sharing one database). Both run the same migrations and pass
 * the same contract suite.
 */
import { PostgresStore } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './types.js';

export { LeaseLostError, StoreConflictError, StoreNotFoundError } from './errors.js';
export { newQueueId } from './queue-id.js';
export { SqliteStore } from './sqlite.js';
export { PostgresStore } from './postgres.js';
export type * from './types.js';

export interface StoreOptions {
  /** `sqlite:PATH`, `sqlite://PATH`, a bare path, `:memory:`, or `postgres://...`. */
  url: string;
  /** Create or upgrade the schema before returning (true unless set to false). */
  migrate?: boolean;
}

/** Open the store at `options.url` and bring its schema up to date. */
export async function openStore(options: StoreOptions): Promise<Store> {
  const store = createStore(options.url);
  if (options.migrate !== false) {
    try {
      await store.migrate();
    } catch (error) {
      await store.close();
      if (store instanceof PostgresStore) {
        // pg's connection errors do not name the server; the URL (without its password) does.
        const reason = error instanceof Error ? error.message : String(error);
        throw new Error(`store.url ${redactUrl(options.url)}: ${reason}`, { cause: error });
      }
      throw error;
    }
  }
  return store;
}

function createStore(url: string): Store {
  if (/^postgres(ql)?:\/\//i.test(url)) return new PostgresStore({ url });
  const path = url.replace(/^sqlite:(\/\/)?/i, '');
  if (path === '') throw new Error('store.url is empty: set it to sqlite:PATH');
  return new SqliteStore({ path });
}

/** The URL without its password, for error messages. */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
}
