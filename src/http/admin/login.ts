/**
 * Sign-in and sign-out. Failed attempts are limited per user name and client address (5 in 5
 * minutes) and per client address (20 in 5 minutes). A blocked attempt is answered 429 with the
 * wait and its password is not checked at all, so a guess during the block learns nothing.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';

import type { AdminState } from './context.js';
import { formValue, redirect } from './context.js';
import { errorSummary, field, html, page } from './html.js';
import { LoginLimiter, SESSION_COOKIE, type SessionStore } from './session.js';
import { TOKEN_USERNAME } from './users.js';

/** Only same-site paths under /admin may be a target after sign-in. */
function safeNext(next: string): string {
  return /^\/admin(\/|$|\?)/.test(next) && !next.startsWith('//') ? next : '/admin/domains';
}

function loginPage(
  reply: FastifyReply,
  options: { next: string; username?: string; error?: string; status?: number },
): FastifyReply {
  const errors = options.error ? [{ field: 'username', message: options.error }] : [];
  return reply
    .code(options.status ?? 200)
    .type('text/html; charset=utf-8')
    .send(
      page(
        { title: 'Sign in' },
        html`${errorSummary(errors)}
          <form novalidate method="post" action="/admin/login" class="narrow">
            <input type="hidden" name="next" value="${options.next}" />
            ${field({ name: 'username', label: 'User name', value: options.username ?? '', required: true, autocomplete: 'username' })}
            ${field({ name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'current-password', hint: `To sign in before any user exists, use the name "${TOKEN_USERNAME}" and one of the API tokens of the configuration.` })}
            <button type="submit">Sign in</button>
          </form>`,
      ),
    );
}

export function registerLogin(
  app: FastifyInstance,
  state: AdminState,
  sessions: SessionStore,
): void {
  const limiter = new LoginLimiter(5, 5 * 60 * 1000);
  const addressLimiter = new LoginLimiter(20, 5 * 60 * 1000);

  app.get('/admin/login', (request, reply) => {
    const next = safeNext(formValue(request.query, 'next'));
    return loginPage(reply, { next });
  });

  app.post('/admin/login', async (request, reply) => {
    const username = formValue(request.body, 'username');
    const password = (request.body as Record<string, unknown> | undefined)?.password;
    const next = safeNext(formValue(request.body, 'next'));
    // Keyed by name and address together, so failures from one client cannot lock a user out
    // everywhere; the looser per-address limit bounds guessing across many names.
    const userKey = `user:${username.toLowerCase()}@${request.ip}`;
    const addressKey = `ip:${request.ip}`;

    const wait = Math.max(limiter.retryAfter(userKey), addressLimiter.retryAfter(addressKey));
    if (wait > 0) {
      void reply.header('retry-after', String(wait));
      return loginPage(reply, {
        next,
        username,
        status: 429,
        error: `Too many failed sign-in attempts. Wait ${Math.ceil(wait / 60)} minute(s), then try again.`,
      });
    }
    if (username === '' || typeof password !== 'string' || password === '') {
      return loginPage(reply, {
        next,
        username,
        status: 400,
        error: 'Enter your user name and password.',
      });
    }

    const user = await state.users.authenticate(username, password);
    if (!user) {
      limiter.fail(userKey);
      addressLimiter.fail(addressKey);
      request.log.warn({ username, client: request.ip }, 'admin sign-in failed');
      return loginPage(reply, {
        next,
        username,
        status: 401,
        error: 'The user name or password is wrong. Check both and try again.',
      });
    }
    limiter.succeed(userKey);
    const session = sessions.create(user);
    request.log.info({ username: user.username, client: request.ip }, 'admin signed in');
    void reply.setCookie(SESSION_COOKIE, session.id, {
      path: '/admin',
      httpOnly: true,
      sameSite: 'strict',
      secure: state.secureCookies ?? request.protocol === 'https',
    });
    return redirect(reply, next);
  });

  app.post('/admin/logout', (request, reply) => {
    sessions.destroy(request.cookies[SESSION_COOKIE]);
    void reply.clearCookie(SESSION_COOKIE, { path: '/admin' });
    return redirect(reply, '/admin/login');
  });
}
