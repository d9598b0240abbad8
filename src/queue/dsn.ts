/**
 * Delivery status notifications (RFC 3464): the bounce Herald sends to an envelope sender when
 * a delivery fails or its queue lifetime runs out. The message is a `multipart/report;
 * report-type=delivery-status` (RFC 6522) with three parts:
 * 1. a human-readable explanation in plain text;
 * 2. `message/delivery-status`: per-message fields, then one block per recipient;
 * 3. the original message's header section as `text/rfc822-headers` (never its body, so a
 *    bounce is small and does not return content to a possibly forged sender).
 *
 * The DSN comes from `MAILER-DAEMON@hostname` and travels with the null envelope sender
 * (RFC 5321 section 4.5.5), so it never causes another bounce.
 */
import { randomBytes } from 'node:crypto';

import { createMessageId, formatDate, formatHeaderField, splitMessage } from '../message/index.js';
import type { NewMessage } from '../store/types.js';

/** RFC 3464 section 2.3.3. */
export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';

export interface DsnRecipient {
  /** The address Herald tried to deliver to (Final-Recipient). */
  recipient: string;
  /** The address as the sender gave it, when it differs (an alias before forwarding). */
  originalRecipient?: string;
  action: DsnAction;
  /** Enhanced status code (RFC 3463), such as `5.1.1`, or `4.4.7` for an expired message. */
  status: string;
  /** The MX host that answered; omitted when none was reached. */
  remoteMta?: string | null;
  /** The remote SMTP reply, or a local explanation when there is none. */
  diagnostic?: string | null;
  lastAttemptAt?: Date;
  /** For `delayed`: when Herald gives up (Will-Retry-Until). */
  willRetryUntil?: Date;
}

export interface DsnOptions {
  /** Herald's host name: the Reporting-MTA and the domain of MAILER-DAEMON. */
  hostname: string;
  /** The envelope sender of the original message; never `''`. */
  to: string;
  /** Queue id of the original message, for the reader and for support requests. */
  queueId: string;
  arrivalDate: Date;
  recipients: DsnRecipient[];
  /** The original message; only its header section goes into the report. */
  original: Buffer;
  /** The ENVID the original's client gave in MAIL FROM (RFC 3461), if any. */
  envelopeId?: string;
  now?: Date;
}

/**
 * Build the DSN message, CRLF line endings. Throws a TypeError for the null sender or an empty
 * recipient list, because either means the caller should not send a DSN at all.
 */
export function buildDsn(options: DsnOptions): Buffer {
  if (options.to === '') throw new TypeError('a DSN is never sent to the null sender');
  if (options.recipients.length === 0) throw new TypeError('a DSN needs at least one recipient');
  const now = options.now ?? new Date();
  const boundary = `${options.queueId}.${randomBytes(9).toString('base64url')}/${options.hostname}`;
  const headers = splitMessage(options.original).header;
  const eightBit = headers.some((byte) => byte >= 0x80);

  const top = [
    formatHeaderField('From', `Mail Delivery System <MAILER-DAEMON@${options.hostname}>`),
    formatHeaderField('To', `<${options.to}>`),
    formatHeaderField('Subject', subjectOf(options.recipients)),
    formatHeaderField('Date', formatDate(now)),
    formatHeaderField('Message-ID', createMessageId(options.hostname, now)),
    // RFC 3834 section 5: automatic replies must not answer this message.
    formatHeaderField('Auto-Submitted', 'auto-replied'),
    formatHeaderField('MIME-Version', '1.0'),
    formatHeaderField(
      'Content-Type',
      `multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    ),
    formatHeaderField('Content-Transfer-Encoding', eightBit ? '8bit' : '7bit'),
  ].join('');

  const parts = [
    `${top}\r\nThis is a MIME-encapsulated message.\r\n\r\n`,
    `--${boundary}\r\n`,
    'Content-Description: Notification\r\n',
    'Content-Type: text/plain; charset=utf-8\r\n\r\n',
    humanText(options),
    `\r\n--${boundary}\r\n`,
    'Content-Description: Delivery report\r\n',
    'Content-Type: message/delivery-status\r\n\r\n',
    deliveryStatus(options),
    `\r\n--${boundary}\r\n`,
    'Content-Description: Undelivered message headers\r\n',
    'Content-Type: text/rfc822-headers\r\n',
    eightBit ? 'Content-Transfer-Encoding: 8bit\r\n' : '',
    '\r\n',
  ];
  const closing = `\r\n--${boundary}--\r\n`;
  return Buffer.concat([
    Buffer.from(parts.join(''), 'utf8'),
    withFinalCrlf(headers),
    Buffer.from(closing),
  ]);
}

/**
 * Build the queue request for a DSN: origin `bounce`, the null sender, and an empty `bounceTo`, so
 * that a DSN which cannot be delivered is dropped and never bounces in turn.
 */
export function dsnQueueMessage(dsn: Buffer, to: string): NewMessage {
  return {
    body: dsn,
    origin: 'bounce',
    originalSender: '',
    recipients: [{ recipient: to, sender: '', bounceTo: '' }],
  };
}

function subjectOf(recipients: readonly DsnRecipient[]): string {
  if (recipients.every((r) => r.action === 'delayed')) return 'Delayed Mail (still being retried)';
  if (recipients.every((r) => r.action === 'delivered' || r.action === 'relayed')) {
    return 'Successful Mail Delivery Report';
  }
  return 'Undelivered Mail Returned to Sender';
}

function humanText(options: DsnOptions): string {
  const failed = options.recipients.filter((r) => r.action === 'failed');
  const delayed = options.recipients.filter((r) => r.action === 'delayed');
  const lines = [`This is the mail system at host ${options.hostname}.`, ''];
  if (failed.length > 0) {
    lines.push(
      'Your message could not be delivered to one or more recipients. The reasons are below.',
      'It was not delivered and will not be retried.',
      '',
    );
    for (const recipient of failed) lines.push(...recipientText(recipient), '');
  }
  if (delayed.length > 0) {
    lines.push('Delivery to these recipients is delayed; the mail system keeps trying:', '');
    for (const recipient of delayed) {
      lines.push(...recipientText(recipient));
      if (recipient.willRetryUntil !== undefined) {
        lines.push(`    Herald gives up at ${formatDate(recipient.willRetryUntil)}.`);
      }
      lines.push('');
    }
  }
  lines.push(`The headers of your message (queue id ${options.queueId}) are attached.`);
  return `${lines.join('\r\n')}\r\n`;
}

function recipientText(recipient: DsnRecipient): string[] {
  const reason = oneLine(recipient.diagnostic ?? `status ${recipient.status}`);
  const host = recipient.remoteMta ? `host ${recipient.remoteMta} said: ` : '';
  return [`<${recipient.recipient}>:`, `    ${host}${reason}`];
}

/** Render the `message/delivery-status` body: per-message fields, then one block per recipient. */
function deliveryStatus(options: DsnOptions): string {
  const perMessage = [
    formatHeaderField('Reporting-MTA', `dns; ${options.hostname}`),
    formatHeaderField('X-Herald-Queue-ID', options.queueId),
  ];
  if (options.envelopeId !== undefined) {
    perMessage.push(formatHeaderField('Original-Envelope-Id', options.envelopeId));
  }
  perMessage.push(formatHeaderField('Arrival-Date', formatDate(options.arrivalDate)));

  const blocks = options.recipients.map((recipient) => {
    const fields = [];
    if (recipient.originalRecipient !== undefined) {
      fields.push(
        formatHeaderField('Original-Recipient', `rfc822; ${recipient.originalRecipient}`),
      );
    }
    fields.push(
      formatHeaderField('Final-Recipient', `rfc822; ${recipient.recipient}`),
      formatHeaderField('Action', recipient.action),
      formatHeaderField('Status', recipient.status),
    );
    if (recipient.remoteMta)
      fields.push(formatHeaderField('Remote-MTA', `dns; ${recipient.remoteMta}`));
    if (recipient.diagnostic) {
      // `smtp` only for a reply that came from a remote server (RFC 3464 section 2.3.6);
      // a local explanation uses `x-herald`.
      const type = recipient.remoteMta ? 'smtp' : 'x-herald';
      fields.push(
        formatHeaderField('Diagnostic-Code', `${type}; ${oneLine(recipient.diagnostic)}`),
      );
    }
    if (recipient.lastAttemptAt !== undefined) {
      fields.push(formatHeaderField('Last-Attempt-Date', formatDate(recipient.lastAttemptAt)));
    }
    if (recipient.willRetryUntil !== undefined) {
      fields.push(formatHeaderField('Will-Retry-Until', formatDate(recipient.willRetryUntil)));
    }
    return fields.join('');
  });
  return [perMessage.join(''), ...blocks].join('\r\n');
}

/** Maximum length of a diagnostic, so that every line of the DSN stays under 998 octets. */
const MAX_DIAGNOSTIC = 900;

/**
 * Flatten a multi-line SMTP reply to one line without control characters, cut to MAX_DIAGNOSTIC
 * characters (a reply line is at most 512 octets by RFC 5321 section 4.5.3.1.5, but a
 * multi-line reply or a local explanation may be longer).
 */
function oneLine(text: string): string {
  let line = '';
  for (const char of text.replace(/\r?\n/g, ' ')) {
    const code = char.charCodeAt(0);
    if (code >= 0x20 && code !== 0x7f) line += char;
  }
  line = line.trim();
  return line.length > MAX_DIAGNOSTIC ? `${line.slice(0, MAX_DIAGNOSTIC)}...` : line;
}

function withFinalCrlf(headers: Buffer): Buffer {
  const endsWithCrlf = headers.length >= 2 && headers.subarray(-2).toString('latin1') === '\r\n';
  return endsWithCrlf ? headers : Buffer.concat([headers, Buffer.from('\r\n')]);
}
