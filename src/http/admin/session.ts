/**
 * Admin sessions, CSRF tokens and login rate limits, kept in memory: a restart signs every
 * administrator out. The session id travels in an HttpOnly, SameSite=Strict cookie; every
 * form that changes state carries the session's CSRF token (synchronizer token pattern), and
 * requests whose Origin header names another host are rejected as well.
 *
 * NOTE: sessions and limits live in one process, so several Herald nodes behind one address
 * would each need their own sign-in.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';

import type { PageUser } from './html.js';

export const SESSION_COOKIE = 'herald_admin';
/** Idle time after which a session ends, in milliseconds. */
const SESSION_IDLE_MS = 8 * 60 * 60 * 1000;
/** Upper bound on live sessions, so a flood of logins cannot exhaust memory. */
const MAX_SESSIONS = 10_000;

export interface Session {
  id: string;
  user: PageUser & { organisationId: number | null };
  csrf: string;
  lastSeen: number;
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly now: () => number = Date.now) {}

  create(user: Session['user']): Session {
    this.expire();
    if (this.sessions.size >= MAX_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
    const session = {
      id: randomBytes(32).toString('base64url'),
      user,
      csrf: randomBytes(32).toString('base64url'),
      lastSeen: this.now(),
    };
    this.sessions.set(session.id, session);
    return session;
  }

  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (this.now() - session.lastSeen > SESSION_IDLE_MS) {
      this.sessions.delete(id);
      return undefined;
    }
    session.lastSeen = this.now();
    return session;
  }

  destroy(id: string | undefined): void {
    if (id) this.sessions.delete(id);
  }

  private expire(): void {
    const now = this.now();
    for (const [id, session] of this.sessions) {
      if (now - session.lastSeen > SESSION_IDLE_MS) this.sessions.delete(id);
    }
  }
}

/** Compares a submitted CSRF token with the session's in constant time. */
export function csrfMatches(session: Session, submitted: unknown): boolean {
  if (typeof submitted !== 'string') return false;
  const expected = Buffer.from(session.csrf);
  const actual = Buffer.from(submitted);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/**
 * A fixed-window counter of failed logins per key (client address, user name). A key that
 * reaches `limit` failures is blocked until its window ends.
 */
export class LoginLimiter {
  private readonly windows = new Map<string, { start: number; failures: number }>();

  constructor(
    private readonly limit = 5,
    private readonly windowMs = 5 * 60 * 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until `key` may try again, or 0 when it may try now. */
  retryAfter(key: string): number {
    const window = this.windows.get(key);
    if (!window) return 0;
    const elapsed = this.now() - window.start;
    if (elapsed >= this.windowMs) {
      this.windows.delete(key);
      return 0;
    }
    return window.failures >= this.limit ? Math.ceil((this.windowMs - elapsed) / 1000) : 0;
  }

  fail(key: string): void {
    const window = this.windows.get(key);
    if (!window || this.now() - window.start >= this.windowMs) {
      this.windows.set(key, { start: this.now(), failures: 1 });
    } else {
      window.failures++;
    }
    if (this.windows.size > MAX_SESSIONS) {
      const oldest = this.windows.keys().next().value;
      if (oldest !== undefined) this.windows.delete(oldest);
    }
  }

  succeed(key: string): void {
    this.windows.delete(key);
  }
}
