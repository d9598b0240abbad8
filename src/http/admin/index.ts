/**
 * The web admin under `/admin`: sign-in with sessions, CSRF protection and rate-limited
 * logins, then server-rendered pages for domains (with the DNS setup assistant and key
 * rotation), aliases, lists and subscribers, campaigns, the queue and the event log. Assets
 * come from `/admin/assets/`; nothing loads from another host, and the Content-Security-Policy
 * header enforces that.
 *
 * The plugin is encapsulated: its cookie and form parsers, hooks and error page apply to its
 * own routes only.
 */
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { registerAssets } from './assets.js';
import { setSession, type AdminOptions, type AdminState } from './context.js';
import { html, page } from './html.js';
import { registerLogin } from './login.js';
import { registerDistributionPages } from './pages-distribution.js';
import { registerDomainPages } from './pages-domains.js';
import { registerNodePages } from './pages-nodes.js';
import { registerQueuePages } from './pages-queue.js';
import { registerUserPages } from './pages-users.js';
import { watchRotations } from './rotation-watch.js';
import { SESSION_COOKIE, SessionStore, csrfMatches } from './session.js';
import { AdminUsers } from './users.js';

export type { AdminOptions } from './context.js';

const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "img-src 'self' data:",
  "style-src 'self'",
  "script-src 'self'",
  "frame-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'self'",
  "base-uri 'none'",
].join('; ');

/** Paths reachable without a session. */
const PUBLIC_PATHS = new Set(['/admin/login']);

/** Service errors whose message is meant for the operator, with the status they map to. */
const STATUS_BY_ERROR: Record<string, number> = {
  InvalidInputError: 400,
  InvalidRequestError: 400,
  CampaignError: 400,
  NotFoundError: 404,
  ConflictError: 409,
  StateConflictError: 409,
};

export async function adminPlugin(app: FastifyInstance, options: AdminOptions): Promise<void> {
  await app.register(cookie);
  await app.register(formbody, { bodyLimit: 20 * 1024 * 1024 });
  const state: AdminState = {
    ...options,
    users: new AdminUsers(options.context.dataDir, options.tokens),
  };
  const sessions = new SessionStore();

  app.addHook('onSend', async (_request, reply, payload) => {
    if (!reply.hasHeader('content-security-policy')) {
      void reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    }
    void reply.header('x-content-type-options', 'nosniff');
    void reply.header('referrer-policy', 'same-origin');
    if (!reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store');
    return payload;
  });

  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (path.startsWith('/admin/assets/') || PUBLIC_PATHS.has(path)) return;
    const session = sessions.get(request.cookies[SESSION_COOKIE]);
    if (!session) {
      if (request.method === 'GET' && !path.endsWith('.json')) {
        const next = encodeURIComponent(request.url);
        return reply.code(303).header('location', `/admin/login?next=${next}`).send();
      }
      return reply.code(401).type('text/plain; charset=utf-8').send('Sign in first.');
    }
    setSession(request, session);
  });

  // CSRF: every state-changing request carries the session's token, and a browser's Origin
  // header, when sent, must be this host.
  app.addHook('preHandler', async (request, reply) => {
    if (request.method === 'GET' || request.method === 'HEAD') return;
    const path = request.url.split('?')[0] ?? '';
    if (PUBLIC_PATHS.has(path)) return;
    const session = sessions.get(request.cookies[SESSION_COOKIE]);
    if (!session) return;
    const submitted =
      (request.body as Record<string, unknown> | undefined)?._csrf ??
      request.headers['x-csrf-token'];
    if (!csrfMatches(session, submitted) || !sameOrigin(request)) {
      return reply
        .code(403)
        .type('text/html; charset=utf-8')
        .send(
          page(
            { title: 'Request rejected', user: session.user, csrf: session.csrf },
            html`<p>
              The form was out of date or came from another site, so nothing was changed. Go back,
              reload the page and submit it again.
            </p>`,
          ),
        );
    }
  });

  app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) =>
    sendError(error, request, reply),
  );

  const rotations = watchRotations(options, app.log, options.rotationCheckMs);
  app.addHook('onClose', (_instance, done) => {
    rotations.stop();
    done();
  });

  registerAssets(app);
  registerLogin(app, state, sessions);
  app.get('/admin', (_request, reply) =>
    reply.code(303).header('location', '/admin/domains').send(),
  );
  registerDomainPages(app, state);
  registerDistributionPages(app, state);
  registerQueuePages(app, state);
  registerNodePages(app, state);
  registerUserPages(app, state);
}

function sameOrigin(request: FastifyRequest): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}

function sendError(
  error: Error & { statusCode?: number },
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const status = STATUS_BY_ERROR[error.name] ?? error.statusCode ?? 500;
  if (status >= 500) request.log.error({ err: error, url: request.url }, 'admin page failed');
  const message =
    status >= 500
      ? 'Herald could not complete this request; the error is in the server log.'
      : error.message;
  if (request.url.split('?')[0]?.endsWith('.json')) {
    return reply.code(status).send({ error: message });
  }
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .send(
      page(
        { title: status === 404 ? 'Not found' : 'Something went wrong' },
        html`<p role="alert">${message}</p>
          <p><a href="/admin">Back to the admin pages</a></p>`,
      ),
    );
}
