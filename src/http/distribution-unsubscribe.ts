/**
 * The unsubscribe endpoints behind the `List-Unsubscribe` URL: GET shows a confirmation page
 * with a button, POST unsubscribes at once with no login. POST is also the RFC 8058 one-click
 * request that mail clients send with the body `List-Unsubscribe=One-Click`. The token in the
 * path is HMAC-signed, so a guessed or altered token is rejected with 404.
 */
import type { FastifyInstance } from 'fastify';

import type { FeedbackRecorder } from '../distribution/feedback.js';
import { escapeHtml } from '../distribution/render.js';
import { verifyToken } from '../distribution/tokens.js';
import type { DistributionStore } from '../distribution/types.js';

export interface UnsubscribeRoutesOptions {
  distribution: DistributionStore;
  recorder: FeedbackRecorder;
}

/** Registers `GET /u/:token` and `POST /u/:token`. */
export async function registerUnsubscribeRoutes(
  app: FastifyInstance,
  options: UnsubscribeRoutesOptions,
): Promise<void> {
  const secret = await options.distribution.getSecret('recipient-token');

  // One-click requests arrive as forms (RFC 8058 section 3.1); the body itself carries no data
  // Herald needs, so it is read as text and ignored.
  for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data']) {
    // An app that already parses forms (with @fastify/formbody) keeps its parser.
    if (app.hasContentTypeParser(type)) continue;
    app.addContentTypeParser(
      type,
      { parseAs: 'string', bodyLimit: 64 * 1024 },
      (_request, body, done) => done(null, body),
    );
  }

  app.get('/u/:token', async (request, reply) => {
    const token = (request.params as { token: string }).token;
    const ref = verifyToken(secret, 'unsubscribe', token);
    if (!ref)
      return reply
        .code(404)
        .type('text/html; charset=utf-8')
        .send(page('Link not valid', INVALID_TEXT));
    const subscriber = await options.distribution.getSubscriber(ref.subscriberId);
    const list = subscriber ? await options.distribution.getList(subscriber.listId) : undefined;
    const what = list ? `the list ${escapeHtml(list.name)}` : 'this list';
    const address = subscriber ? escapeHtml(subscriber.address) : 'this address';
    const body =
      `<p>Unsubscribe ${address} from ${what}?</p>` +
      `<form method="post" action="/u/${escapeHtml(token)}">` +
      '<input type="hidden" name="List-Unsubscribe" value="One-Click">' +
      '<button type="submit">Unsubscribe</button></form>';
    return reply.type('text/html; charset=utf-8').send(page('Unsubscribe', body));
  });

  app.post('/u/:token', async (request, reply) => {
    const token = (request.params as { token: string }).token;
    const ref = verifyToken(secret, 'unsubscribe', token);
    if (!ref)
      return reply
        .code(404)
        .type('text/html; charset=utf-8')
        .send(page('Link not valid', INVALID_TEXT));
    const outcome = await options.recorder.unsubscribe(ref, 'unsubscribe link');
    request.log.info(
      { campaign: ref.campaignId, subscriber: ref.subscriberId, applied: outcome.applied },
      'unsubscribe request',
    );
    return reply
      .type('text/html; charset=utf-8')
      .send(
        page(
          'Unsubscribed',
          '<p>You are unsubscribed and will receive no more messages from this list.</p>',
        ),
      );
  });
}

const INVALID_TEXT =
  '<p>This unsubscribe link is not valid. Use the link from the message itself.</p>';

function page(title: string, body: string): string {
  return (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`
  );
}
