/**
 * Admin users: a user name, a scrypt password hash (the same hashing as submission
 * credentials), a role, and for members their organisation. They are kept in
 * `DATA_DIR/admin-users.json` (mode 0600), written through a temporary file and a rename.
 *
 * Until the first user exists, and always as a way back in, an administrator signs in as
 * `admin` with one of the configured API tokens as the password.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { hashPassword, verifyPassword } from '../../domains/password.js';

export interface AdminUser {
  username: string;
  passwordHash: string;
  role: 'admin' | 'member';
  organisationId: number | null;
  createdAt: string;
}

export type SignedInUser = Omit<AdminUser, 'passwordHash' | 'createdAt'>;

/** The user name that signs in with an API token. */
export const TOKEN_USERNAME = 'admin';

export class AdminUsers {
  private readonly path: string;

  constructor(
    dataDir: string,
    private readonly tokens: readonly string[],
  ) {
    this.path = join(dataDir, 'admin-users.json');
  }

  async list(): Promise<AdminUser[]> {
    try {
      return JSON.parse(await readFile(this.path, 'utf8')) as AdminUser[];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  /** Adds a user; returns a message naming the problem instead when the input is invalid. */
  async add(input: {
    username: string;
    password: string;
    role: 'admin' | 'member';
    organisationId: number | null;
  }): Promise<{ field: string; message: string } | undefined> {
    const username = input.username.trim().toLowerCase();
    if (!/^[a-z0-9._@-]{2,64}$/.test(username)) {
      return {
        field: 'username',
        message: 'Enter a user name of 2 to 64 letters, digits, dots, dashes, underscores or @.',
      };
    }
    if (username === TOKEN_USERNAME) {
      return {
        field: 'username',
        message: `The name "${TOKEN_USERNAME}" is reserved for token sign-in.`,
      };
    }
    if (input.password.length < 10) {
      return { field: 'password', message: 'Enter a password of at least 10 characters.' };
    }
    if (input.role === 'member' && input.organisationId === null) {
      return {
        field: 'organisationId',
        message: 'Choose the organisation this member belongs to.',
      };
    }
    const users = await this.list();
    if (users.some((user) => user.username === username)) {
      return { field: 'username', message: `A user named ${username} exists already.` };
    }
    users.push({
      username,
      passwordHash: await hashPassword(input.password),
      role: input.role,
      organisationId: input.role === 'admin' ? null : input.organisationId,
      createdAt: new Date().toISOString(),
    });
    await this.save(users);
    return undefined;
  }

  async remove(username: string): Promise<boolean> {
    const users = await this.list();
    const kept = users.filter((user) => user.username !== username);
    if (kept.length === users.length) return false;
    await this.save(kept);
    return true;
  }

  /** Checks a user name and password; returns the user, or undefined when they do not match. */
  async authenticate(username: string, password: string): Promise<SignedInUser | undefined> {
    const name = username.trim().toLowerCase();
    if (name === TOKEN_USERNAME) {
      const offered = digest(password);
      const match = this.tokens.some((token) => timingSafeEqual(digest(token), offered));
      return match ? { username: TOKEN_USERNAME, role: 'admin', organisationId: null } : undefined;
    }
    const user = (await this.list()).find((candidate) => candidate.username === name);
    if (!user || !(await verifyPassword(password, user.passwordHash))) return undefined;
    return { username: user.username, role: user.role, organisationId: user.organisationId };
  }

  private async save(users: AdminUser[]): Promise<void> {
    await writeFile(`${this.path}.tmp`, `${JSON.stringify(users, null, 2)}\n`, { mode: 0o600 });
    await rename(`${this.path}.tmp`, this.path);
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
