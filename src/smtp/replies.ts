/**
 * SMTP replies Herald sends, as named constants: the reply code (RFC 5321 section 4.2) with the
 * enhanced status code (RFC 3463) that starts the text. smtp-server adds its own enhanced codes
 * only when ENHANCEDSTATUSCODES is advertised, and then picks them from the reply code alone
 * (every 550 becomes 5.1.1), so Herald leaves that off and writes the codes itself.
 */

/** An error that smtp-server turns into the reply `responseCode message`. */
export class SmtpReplyError extends Error {
  override name = 'SmtpReplyError';

  constructor(
    readonly responseCode: number,
    /** Enhanced status code, such as `5.1.1`. */
    readonly enhancedCode: string,
    text: string,
  ) {
    super(`${enhancedCode} ${text}`);
  }
}

/** A reply template: code, enhanced code and default text. */
export interface Reply {
  code: number;
  enhanced: string;
  text: string;
}

function reply(code: number, enhanced: string, text: string): Reply {
  return { code, enhanced, text };
}

/** Builds the error for a reply, optionally with a more specific text. */
export function replyError(template: Reply, text: string = template.text): SmtpReplyError {
  return new SmtpReplyError(template.code, template.enhanced, text);
}

/** Formats the text of a 2xx reply, which smtp-server sends with code 250. */
export function replyText(template: Reply, text: string = template.text): string {
  return `${template.enhanced} ${text}`;
}

export const REPLIES = {
  queued: reply(250, '2.0.0', 'Ok: queued'),

  // Recipients (RFC 5321 section 3.3, RFC 3463 section 3.2).
  unknownRecipient: reply(550, '5.1.1', 'Recipient address rejected: user unknown'),
  relayDenied: reply(550, '5.1.1', 'Recipient address rejected: relay access denied'),
  aliasDisabled: reply(550, '5.2.1', 'Recipient address rejected: mailbox disabled'),
  invalidSrsAddress: reply(550, '5.1.1', 'Recipient address rejected: invalid SRS address'),
  tooManyRecipients: reply(452, '4.5.3', 'Too many recipients'),
  srsRateLimited: reply(450, '4.7.1', 'Too many messages for this address, try again later'),

  // Senders.
  senderNotOwned: reply(
    553,
    '5.7.1',
    'Sender address rejected: not owned by the authenticated user',
  ),
  fromNotOwned: reply(550, '5.7.1', 'From header domain is not one of the authenticated domains'),
  fromMissing: reply(550, '5.6.0', 'Message has no valid From header'),

  // Content limits (RFC 1870 for SIZE, RFC 5321 section 4.5.3.1 for line length).
  messageTooLarge: reply(552, '5.3.4', 'Message size exceeds the fixed maximum message size'),
  headerTooLarge: reply(552, '5.3.4', 'Message header size exceeds the limit'),
  lineTooLong: reply(554, '5.6.0', 'Message contains a line longer than the limit'),
  tooManyHops: reply(554, '5.4.6', 'Too many hops: the message seems to loop'),
  dmarcRejected: reply(
    550,
    '5.7.1',
    'Message rejected: it fails DMARC and would fail again when forwarded',
  ),

  // Sessions and client limits.
  tooManyConnections: reply(
    421,
    '4.7.0',
    'Too many connections from your address, try again later',
  ),
  tooManyCommands: reply(421, '4.7.0', 'Too many commands, slow down and try again later'),
  tooManyClients: reply(421, '4.7.0', 'Too many connected clients, try again later'),
  dataTimeout: reply(421, '4.4.2', 'Timeout: the message took too long to arrive, closing'),
  // RFC 3463 section 3.4: 4.3.1 is "mail system full".
  insufficientStorage: reply(452, '4.3.1', 'Insufficient system storage, try again later'),
  shuttingDown: reply(421, '4.3.2', 'Service shutting down, try again later'),

  // Authentication (RFC 4954 section 6).
  authRequired: reply(530, '5.7.0', 'Authentication required'),
  authFailed: reply(535, '5.7.8', 'Authentication credentials invalid'),
  authTemporary: reply(454, '4.7.0', 'Temporary authentication failure'),
  authLocked: reply(454, '4.7.0', 'Too many failed authentication attempts, try again later'),
  authClosing: reply(421, '4.7.0', 'Too many failed authentication attempts, closing'),
  // RFC 3207 section 4.
  startTlsFirst: reply(530, '5.7.0', 'Must issue a STARTTLS command first'),

  // Local trouble: the client should retry.
  localError: reply(451, '4.3.0', 'Local error in processing, try again later'),
  dnsTemporary: reply(451, '4.4.3', 'Temporary DNS failure, try again later'),
} as const satisfies Record<string, Reply>;
