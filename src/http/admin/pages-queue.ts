/**
 * The queue (entries by status, with retry and delete per message, like `postqueue` and
 * `postsuper`) and the event log of delivery attempts with search. Administrators only.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

import type { QueueEvent, QueueStatus } from '../../store/types.js';

import { adminOnly, formValue, redirect, sendPage, sessionOf, type AdminState } from './context.js';
import { csrfField, formatTime, html } from './html.js';

const STATUSES: readonly QueueStatus[] = ['queued', 'deferred', 'delivered', 'failed'];
/** Events read for a text search. */
const SEARCH_WINDOW = 20_000;
const SHOWN = 500;

function requireAdmin(request: FastifyRequest): void {
  if (!adminOnly(sessionOf(request))) {
    throw Object.assign(new Error('not found'), { name: 'NotFoundError' });
  }
}

export function registerQueuePages(app: FastifyInstance, state: AdminState): void {
  const store = state.context.store;

  app.get('/admin/queue', async (request, reply) => {
    requireAdmin(request);
    const query = request.query as Record<string, string | undefined>;
    const status = STATUSES.find((candidate) => candidate === query.status);
    const [entries, counts] = await Promise.all([
      store.listEntries({ ...(status ? { status } : { status: 'deferred' }), limit: SHOWN }),
      store.countByStatus(),
    ]);
    const shown = status ?? 'deferred';
    const csrf = sessionOf(request).csrf;
    return sendPage(
      request,
      reply,
      { title: 'Queue', section: 'queue' },
      html`<nav aria-label="Queue status">
          <ul class="tabs">
            ${STATUSES.map(
              (candidate) =>
                html`<li>
                  <a
                    href="/admin/queue?status=${candidate}"
                    ${candidate === shown ? html` aria-current="page"` : ''}
                    >${candidate} (${counts[candidate]})</a
                  >
                </li>`,
            )}
          </ul>
        </nav>
        <form novalidate method="post" action="/admin/queue/retry-all" class="inline">
          ${csrfField(csrf)}<button type="submit">Retry every deferred message now</button>
        </form>
        ${
          entries.length === 0
            ? html`<p>No ${shown} entry.</p>`
            : html`<div class="table-wrap">
                <table id="queue">
                  <thead>
                    <tr>
                      <th scope="col">Queue id</th>
                      <th scope="col">Recipient</th>
                      <th scope="col">Sender</th>
                      <th scope="col">Attempts</th>
                      <th scope="col">Next attempt</th>
                      <th scope="col">Last reply</th>
                      <th scope="col"><span class="visually-hidden">Actions</span></th>
                    </tr>
                  </thead>
                  <tbody>
                    ${entries.map(
                      (entry) =>
                        html`<tr>
                          <td>
                            <a href="/admin/events?q=${entry.messageId}">${entry.messageId}</a>
                          </td>
                          <td>${entry.recipient}</td>
                          <td>${entry.sender || '<>'}</td>
                          <td>${entry.attempts}</td>
                          <td>${formatTime(entry.nextAttemptAt)}</td>
                          <td>${entry.lastReply ?? ''}</td>
                          <td class="row-actions">
                            <form
                              method="post"
                              action="/admin/queue/${entry.messageId}/retry"
                              class="inline"
                            >
                              ${csrfField(csrf)}<button
                                type="submit"
                                aria-label="Retry ${entry.messageId} now"
                              >
                                Retry
                              </button>
                            </form>
                            <form
                              method="post"
                              action="/admin/queue/${entry.messageId}/delete"
                              class="inline"
                            >
                              ${csrfField(csrf)}<button
                                type="submit"
                                class="danger"
                                aria-label="Delete ${entry.messageId}"
                              >
                                Delete
                              </button>
                            </form>
                          </td>
                        </tr>`,
                    )}
                  </tbody>
                </table>
              </div>`
        }`,
    );
  });

  app.post('/admin/queue/retry-all', async (request, reply) => {
    requireAdmin(request);
    const changed = await store.retryNow({ all: true });
    state.onRetry?.();
    return redirect(
      reply,
      '/admin/queue',
      `${changed} entr${changed === 1 ? 'y' : 'ies'} due now.`,
    );
  });

  app.post('/admin/queue/:id/retry', async (request, reply) => {
    requireAdmin(request);
    const { id = '' } = request.params as Record<string, string>;
    const changed = await store.retryNow({ messageId: id });
    state.onRetry?.();
    return redirect(
      reply,
      '/admin/queue',
      changed === 0
        ? `Nothing of ${id} to retry.`
        : `${id}: ${changed} entr${changed === 1 ? 'y' : 'ies'} due now.`,
    );
  });

  app.post('/admin/queue/:id/delete', async (request, reply) => {
    requireAdmin(request);
    const { id = '' } = request.params as Record<string, string>;
    const deleted = await store.deleteEntries({ messageId: id });
    request.log.info(
      { queueId: id, deleted, by: sessionOf(request).user.username },
      'queue entries deleted from the admin pages',
    );
    return redirect(
      reply,
      '/admin/queue',
      deleted === 0
        ? `${id} was not in the queue.`
        : `${id} deleted (${deleted} entr${deleted === 1 ? 'y' : 'ies'}).`,
    );
  });

  app.get('/admin/events', async (request, reply) => {
    requireAdmin(request);
    const query = formValue(request.query, 'q');
    const events = await searchEvents(state, query);
    return sendPage(
      request,
      reply,
      { title: 'Event log', section: 'events' },
      html`<form method="get" action="/admin/events" role="search" class="search">
          <label for="q">Search</label>
          <input id="q" name="q" type="search" value="${query}" aria-describedby="q-hint" />
          <p class="hint" id="q-hint">
            A queue id, an MX host, a reply text or a verdict such as deferred.
          </p>
          <button type="submit">Search</button>
        </form>
        <p role="status">
          ${events.length === 0 ? 'No event matches.' : `${events.length} event(s)${events.length === SHOWN ? ' (the newest shown)' : ''}.`}
        </p>
        ${
          events.length > 0
            ? html`<div class="table-wrap">
                <table id="events">
                  <thead>
                    <tr>
                      <th scope="col">Time (UTC)</th>
                      <th scope="col">Queue id</th>
                      <th scope="col">Event</th>
                      <th scope="col">MX</th>
                      <th scope="col">Reply</th>
                      <th scope="col">Verdict</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${events.map(
                      (event) =>
                        html`<tr>
                          <td>${formatTime(event.time)}</td>
                          <td>
                            <a href="/admin/events?q=${event.messageId}">${event.messageId}</a>
                          </td>
                          <td>${event.kind}</td>
                          <td>${event.mx ?? ''}</td>
                          <td>${event.reply ?? ''}</td>
                          <td>${event.verdict}</td>
                        </tr>`,
                    )}
                  </tbody>
                </table>
              </div>`
            : ''
        }`,
    );
  });
}

/**
 * Events matching `query`, newest first: a queue id is looked up directly; other text is
 * searched in kind, MX, reply and verdict.
 *
 * NOTE: the store lists events oldest first with no offset, so a text search reads at most the
 * first 20,000 events; a long-running server needs a newest-first listing in the store.
 */
async function searchEvents(state: AdminState, query: string): Promise<QueueEvent[]> {
  const store = state.context.store;
  if (/^[0-9A-Za-z]{6,32}$/.test(query)) {
    const direct = await store.listEvents({ messageId: query, limit: SHOWN });
    if (direct.length > 0) return direct.reverse();
  }
  const needle = query.toLowerCase();
  const events = await store.listEvents({ limit: SEARCH_WINDOW });
  const matching =
    needle === ''
      ? events
      : events.filter((event) =>
          [
            event.messageId,
            event.kind,
            event.mx ?? '',
            event.reply ?? '',
            event.verdict,
            event.dsn ?? '',
          ].some((text) => text.toLowerCase().includes(needle)),
        );
  return matching.slice(-SHOWN).reverse();
}
