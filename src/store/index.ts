/**
 * Opening the store named by the `store.url` setting. Only SQLite exists so far: a URL of the
 * form `sqlite:PATH`, `sqlite://PATH` or a bare file path. A `postgres://` URL is rejected
 * until the PostgreSQL backend is written; it will run the same migrations and contract suite.
 */
import { SqliteStore } from './sqlite.js';
import type { Store } from './types.js';

export { LeaseLostError, StoreConflictError, StoreNotFoundError } from './errors.js';
export { newQueueId } from './queue-id.js';
export { SqliteStore } from './sqlite.js';
export type * from './types.js';

export interface StoreOptions {
  /** `sqlite:PATH`, `sqlite://PATH`, a bare path, or `:memory:`. */
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
      throw error;
    }
  }
  return store;
}

function createStore(url: string): Store {
  if (/^postgres(ql)?:\/\//i.test(url)) {
    throw new Error(`store.url ${redactUrl(url)}: the PostgreSQL backend is not available yet`);
  }
  const path = url.replace(/^sqlite:(\/\/)?/i, '');
  if (path === '') throw new Error('store.url is empty: set it to sqlite:PATH');
  return new SqliteStore({ path });
}

/** The URL without its password, for error messages. */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
}
