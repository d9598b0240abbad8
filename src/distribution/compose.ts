/**
 * Composing one recipient's campaign message: the rendered subject and bodies as
 * `multipart/alternative` (text first, HTML last, RFC 2046 section 5.1.4), the list header
 * fields (`List-Id` RFC 2919, `List-Unsubscribe` RFC 2369 with `List-Unsubscribe-Post`
 * RFC 8058) and the usual origination fields. The result is unsigned; signing happens after
 * every header field is final.
 */
import { randomBytes } from 'node:crypto';

import { createMessageId, formatDate, formatHeaderField } from '../message/index.js';
import { encodeHeaderText, encodeQuotedPrintable, formatMailbox } from './encode.js';
import { htmlToText } from './html-text.js';
import {
  compileTemplate,
  escapeHtml,
  renderTemplate,
  sanitizeHeaderValue,
  type CompiledTemplate,
  type MergeContext,
} from './render.js';

/** A campaign's templates, compiled once. */
export interface CampaignTemplates {
  subject: CompiledTemplate;
  html: CompiledTemplate;
  text: CompiledTemplate;
}

/**
 * Compiles a campaign's subject and bodies. Without a text body, the text template is made
 * from the HTML template (merge fields survive the conversion because they contain no tags),
 * so each recipient's text shows the raw values rather than their HTML-escaped form.
 */
export function compileCampaign(campaign: {
  subject: string;
  html: string;
  text: string;
}): CampaignTemplates {
  return {
    subject: compileTemplate(campaign.subject),
    html: compileTemplate(campaign.html),
    text: compileTemplate(campaign.text.trim() !== '' ? campaign.text : htmlToText(campaign.html)),
  };
}

export interface RenderedContent {
  subject: string;
  html: string;
  text: string;
}

/** Renders the subject and both bodies for one recipient. */
export function renderContent(
  templates: CampaignTemplates,
  context: MergeContext,
): RenderedContent {
  return {
    subject: sanitizeHeaderValue(renderTemplate(templates.subject, context, sanitizeHeaderValue)),
    html: renderTemplate(templates.html, context, escapeHtml),
    text: renderTemplate(templates.text, context),
  };
}

export interface Envelope {
  from: { name: string; address: string };
  replyTo?: string;
  to: { name: string; address: string };
  /** `List-Id` value without brackets, for example `list7.example.org` (RFC 2919). */
  listId: string;
  listName: string;
  unsubscribeUrl: string;
  unsubscribeMailto: string;
  /** Value for `Feedback-ID`, which large receivers use to group complaint statistics. */
  feedbackId?: string;
  date?: Date;
}

/** Header fields that the DKIM signature must cover, the list fields included. */
export const SIGNED_FIELDS = [
  'from',
  'to',
  'subject',
  'date',
  'message-id',
  'reply-to',
  'mime-version',
  'content-type',
  'list-id',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'feedback-id',
];

/** Builds the message bytes (CRLF line endings) for one recipient. */
export function composeMessage(content: RenderedContent, envelope: Envelope): Buffer {
  const date = envelope.date ?? new Date();
  const domain = envelope.from.address.slice(envelope.from.address.lastIndexOf('@') + 1);
  const boundary = `=_herald_${randomBytes(12).toString('hex')}`;
  const toName = sanitizeHeaderValue(envelope.to.name);

  let head = '';
  head += formatHeaderField('From', formatMailbox(envelope.from.name, envelope.from.address));
  head += formatHeaderField('To', formatMailbox(toName, envelope.to.address));
  if (envelope.replyTo) head += formatHeaderField('Reply-To', envelope.replyTo);
  head += formatHeaderField('Subject', encodeHeaderText(content.subject));
  head += formatHeaderField('Date', formatDate(date));
  head += formatHeaderField('Message-ID', createMessageId(domain, date));
  head += formatHeaderField('MIME-Version', '1.0');
  head += formatHeaderField(
    'List-Id',
    `${encodeHeaderText(envelope.listName)} <${envelope.listId}>`,
  );
  head += formatHeaderField(
    'List-Unsubscribe',
    `<${envelope.unsubscribeUrl}>, <mailto:${envelope.unsubscribeMailto}>`,
  );
  head += formatHeaderField('List-Unsubscribe-Post', 'List-Unsubscribe=One-Click');
  if (envelope.feedbackId) head += formatHeaderField('Feedback-ID', envelope.feedbackId);
  head += formatHeaderField('Content-Type', `multipart/alternative; boundary="${boundary}"`);

  const body =
    `--${boundary}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    'Content-Transfer-Encoding: quoted-printable\r\n\r\n' +
    `${encodeQuotedPrintable(content.text)}\r\n` +
    `--${boundary}\r\n` +
    'Content-Type: text/html; charset=utf-8\r\n' +
    'Content-Transfer-Encoding: quoted-printable\r\n\r\n' +
    `${encodeQuotedPrintable(content.html)}\r\n` +
    `--${boundary}--\r\n`;
  return Buffer.from(`${head}\r\n${body}`, 'utf8');
}
