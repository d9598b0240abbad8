/** State shared by the admin pages: the services they call and the signed-in session. */
import type { FastifyReply, FastifyRequest } from 'fastify';

import type { CheckLookups } from '../../dns/check.js';
import type { DistributionService, Principal } from '../../distribution/service.js';
import type { ManagementContext } from '../../domains/context.js';

import { page, type Html, type PageOptions } from './html.js';
import type { Session } from './session.js';
import type { AdminUsers } from './users.js';

export interface AdminOptions {
  context: ManagementContext;
  /** Resolver of the setup checker, on the configured DNS servers. */
  lookups: CheckLookups;
  /** API tokens, which also sign in the `admin` user. */
  tokens: readonly string[];
  /** Lists and campaigns. Their pages show a notice when the server runs without distribution. */
  distribution?: DistributionService;
  /** Called after a change to domains, keys or aliases, so the server reloads its keyring. */
  onChange?: () => Promise<void> | void;
  /** Called after a queue retry, so delivery workers wake up. */
  onRetry?: () => void;
  /** Called after a campaign starts, so the campaign scheduler wakes up. */
  onCampaignStarted?: () => void;
  /** Facts of the readiness card that DNS cannot show. */
  readiness?: { oneClickUnsubscribe: boolean; outboundTls: boolean; sendingAddresses?: string[] };
  /** Interval of the background check that switches rotations once DNS serves the new keys. */
  rotationCheckMs?: number;
  /** Name of this node, as its delivery workers and campaign sender sign their leases. */
  node?: string;
  /** Marks the session cookie `Secure`; on by default, off for plain-HTTP tests on loopback. */
  secureCookies?: boolean;
}

export interface AdminState extends AdminOptions {
  users: AdminUsers;
}

const sessions = new WeakMap<FastifyRequest, Session>();

export function setSession(request: FastifyRequest, session: Session): void {
  sessions.set(request, session);
}

/** The session of a request that passed the sign-in hook. */
export function sessionOf(request: FastifyRequest): Session {
  const session = sessions.get(request);
  if (!session) throw new Error('admin route reached without a session');
  return session;
}

/** The principal distribution calls are made as. */
export function principalOf(session: Session): Principal {
  if (session.user.role === 'admin') return { role: 'admin' };
  return { role: 'member', organisationId: session.user.organisationId ?? -1 };
}

/** Sends a full page for the signed-in user. */
export function sendPage(
  request: FastifyRequest,
  reply: FastifyReply,
  options: Omit<PageOptions, 'user' | 'csrf'>,
  body: Html,
  status = 200,
): FastifyReply {
  const session = sessionOf(request);
  const notice = options.notice ?? noticeOf(request);
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .send(
      page(
        { ...options, ...(notice ? { notice } : {}), user: session.user, csrf: session.csrf },
        body,
      ),
    );
}

/** A notice passed along a redirect as `?notice=`. */
function noticeOf(request: FastifyRequest): string | undefined {
  const notice = (request.query as Record<string, unknown> | undefined)?.notice;
  return typeof notice === 'string' ? notice.slice(0, 200) : undefined;
}

/** Redirects after a successful POST (303, so a reload does not repeat it). */
export function redirect(reply: FastifyReply, path: string, notice?: string): FastifyReply {
  const target = notice
    ? `${path}${path.includes('?') ? '&' : '?'}notice=${encodeURIComponent(notice)}`
    : path;
  return reply.code(303).header('location', target).send();
}

export function adminOnly(session: Session): boolean {
  return session.user.role === 'admin';
}

/** The string value of a form field, trimmed; '' when absent. */
export function formValue(body: unknown, name: string): string {
  const value = (body as Record<string, unknown> | null | undefined)?.[name];
  if (typeof value === 'string') return value.trim();
  if (Array.isArray(value) && typeof value[0] === 'string') return value[0].trim();
  return '';
}
