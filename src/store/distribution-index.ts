/**
 * Opening the distribution store on the mail store's database, named by the same `store.url`
 * forms as `openStore`: SQLite for `sqlite:PATH`, `sqlite://PATH` or a bare file path, and
 * PostgreSQL for `postgres://` or `postgresql://`. Open and migrate the mail store first,
 * because the distribution migrations add an index to its queue table.
 */
import type { DistributionStore } from '../distribution/types.js';
import { PostgresDistributionStore } from './distribution-postgres.js';
import { SqliteDistributionStore } from './distribution-sqlite.js';

export { PostgresDistributionStore } from './distribution-postgres.js';
export { SqliteDistributionStore } from './distribution-sqlite.js';

/** Opens the distribution store at `url` and migrates it; on a failed migration it closes it. */
export async function openDistributionStore(url: string): Promise<DistributionStore> {
  const store = createDistributionStore(url);
  try {
    await store.migrate();
  } catch (error) {
    await store.close();
    if (store instanceof PostgresDistributionStore) {
      // pg's connection errors do not name the server; the URL (without its password) does.
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`store.url ${redactPassword(url)}: ${reason}`, { cause: error });
    }
    throw error;
  }
  return store;
}

function createDistributionStore(url: string): DistributionStore {
  if (/^postgres(ql)?:\/\//i.test(url)) return new PostgresDistributionStore({ url });
  const path = url.replace(/^sqlite:(\/\/)?/i, '');
  if (path === '') throw new Error('store.url is empty: set it to sqlite:PATH');
  // A second in-memory connection would be a separate, empty database without the queue table.
  if (path === ':memory:') {
    throw new Error('store.url :memory: cannot hold distribution tables: set it to sqlite:PATH');
  }
  return new SqliteDistributionStore({ path });
}

/** Returns the URL with its password replaced by `***`, for error messages. */
export function redactPassword(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
}
