/**
 * File modes of the SQLite store. The database contains queued message bodies, password hashes
 * and token hashes, so its folder is created 0700 and the file 0600 before SQLite opens it.
 * SQLite creates the `-wal` and `-shm` files with the mode of the database file, so they
 * follow; files left wider by an older version are narrowed here too.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

const PRIVATE_FILE = 0o600;
const PRIVATE_DIRECTORY = 0o700;

/** Creates the database file's folder and the file itself with private modes. */
export function prepareDatabaseFile(path: string): void {
  if (path === ':memory:') return;
  mkdirSync(dirname(path), { recursive: true, mode: PRIVATE_DIRECTORY });
  if (!existsSync(path)) closeSync(openSync(path, 'a', PRIVATE_FILE));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    if (existsSync(file)) chmodSync(file, PRIVATE_FILE);
  }
}
