/**
 * Reading the reports that come back after a campaign: delivery status notifications
 * (RFC 3464, `multipart/report; report-type=delivery-status`) and abuse feedback reports
 * (ARF, RFC 5965, `report-type=feedback-report`). Anything that is neither is returned as a
 * plain bounce text for the rule-based classifier.
 */
import { getHeader, getHeaders } from '../message/index.js';
import {
  leafParts,
  messageHeaders,
  parseFieldBlock,
  partText,
  type HeaderField,
  type MimePart,
} from './mime.js';

export interface DsnRecipient {
  /** Address from `Final-Recipient: rfc822; ADDRESS` (RFC 3464 section 2.3.2). */
  finalRecipient: string;
  originalRecipient?: string;
  /** `failed`, `delayed`, `delivered`, `relayed` or `expanded` (section 2.3.3). */
  action: string;
  /** Enhanced status code such as `5.1.1` (RFC 3463). */
  status: string;
  diagnosticCode?: string;
  remoteMta?: string;
}

export interface DeliveryReport {
  kind: 'dsn';
  reportingMta?: string;
  recipients: DsnRecipient[];
  /** Header fields of the returned message, when the report includes them. */
  originalHeaders: HeaderField[];
}

export interface FeedbackReport {
  kind: 'arf';
  /** `abuse`, `fraud`, `virus`, `not-spam`, `other` (RFC 5965 section 7.3). */
  feedbackType: string;
  userAgent?: string;
  originalMailFrom?: string;
  originalRcptTo: string[];
  reportedDomain?: string;
  sourceIp?: string;
  originalHeaders: HeaderField[];
}

export interface PlainBounce {
  kind: 'plain';
  subject: string;
  /** Decoded text parts, for the pattern rules. */
  text: string;
  originalHeaders: HeaderField[];
}

export type InboundReport = DeliveryReport | FeedbackReport | PlainBounce;

/** Reads a message that arrived at a bounce or complaint address. */
export function parseReport(message: Buffer): InboundReport {
  const headers = messageHeaders(message);
  const parts = leafParts(message);
  const original = originalHeaders(parts);

  const status = parts.find((part) => part.contentType === 'message/delivery-status');
  if (status)
    return { kind: 'dsn', ...parseDeliveryStatus(partText(status)), originalHeaders: original };

  const feedback = parts.find((part) => part.contentType === 'message/feedback-report');
  if (feedback) return { ...parseFeedbackFields(partText(feedback)), originalHeaders: original };

  const text = parts
    .filter((part) => part.contentType === 'text/plain' || part.contentType === 'text/html')
    .map((part) => partText(part))
    .join('\n');
  return {
    kind: 'plain',
    subject: getHeader(headers, 'subject') ?? '',
    text,
    originalHeaders: original,
  };
}

/** Splits the `message/delivery-status` body into its per-message and per-recipient groups. */
export function parseDeliveryStatus(
  body: string,
): Omit<DeliveryReport, 'kind' | 'originalHeaders'> {
  const groups = body
    .replace(/\r\n/g, '\n')
    .split(/\n[ \t]*\n/)
    .map((group) => parseFieldBlock(group))
    .filter((group) => group.length > 0);
  const [perMessage = [], ...perRecipient] = groups;

  const recipients: DsnRecipient[] = [];
  for (const fields of perRecipient) {
    const finalRecipient = typedAddress(getHeader(fields, 'final-recipient'));
    if (!finalRecipient) continue;
    const recipient: DsnRecipient = {
      finalRecipient,
      action: (getHeader(fields, 'action') ?? '').toLowerCase(),
      status: (getHeader(fields, 'status') ?? '').split(/\s/)[0] ?? '',
    };
    const original = typedAddress(getHeader(fields, 'original-recipient'));
    if (original) recipient.originalRecipient = original;
    const diagnostic = getHeader(fields, 'diagnostic-code');
    if (diagnostic)
      recipient.diagnosticCode = diagnostic.replace(/^[^;]*;\s*/, '').replace(/\s+/g, ' ');
    const remote = getHeader(fields, 'remote-mta');
    if (remote) recipient.remoteMta = remote.replace(/^[^;]*;\s*/, '');
    recipients.push(recipient);
  }
  const report: Omit<DeliveryReport, 'kind' | 'originalHeaders'> = { recipients };
  const reporting = getHeader(perMessage, 'reporting-mta');
  if (reporting) report.reportingMta = reporting.replace(/^[^;]*;\s*/, '');
  return report;
}

function parseFeedbackFields(body: string): Omit<FeedbackReport, 'originalHeaders'> {
  const fields = parseFieldBlock(body.replace(/\r\n/g, '\n').replace(/\n[ \t]*\n/g, '\n'));
  const report: Omit<FeedbackReport, 'originalHeaders'> = {
    kind: 'arf',
    feedbackType: (getHeader(fields, 'feedback-type') ?? 'other').toLowerCase(),
    originalRcptTo: getHeaders(fields, 'original-rcpt-to').map(stripAngles),
  };
  const optional: [keyof FeedbackReport, string][] = [
    ['userAgent', 'user-agent'],
    ['originalMailFrom', 'original-mail-from'],
    ['reportedDomain', 'reported-domain'],
    ['sourceIp', 'source-ip'],
  ];
  for (const [key, name] of optional) {
    const value = getHeader(fields, name);
    if (value !== undefined)
      (report as Record<string, unknown>)[key] =
        key === 'originalMailFrom' ? stripAngles(value) : value;
  }
  return report;
}

/** Header fields of the returned original (`message/rfc822` or `text/rfc822-headers`). */
function originalHeaders(parts: MimePart[]): HeaderField[] {
  const part = parts.find(
    (candidate) =>
      candidate.contentType === 'message/rfc822' ||
      candidate.contentType === 'text/rfc822-headers' ||
      candidate.contentType === 'message/rfc822-headers',
  );
  if (!part) return [];
  if (part.contentType === 'message/rfc822') return messageHeaders(part.body);
  return parseFieldBlock(part.body.toString('latin1'));
}

/** `rfc822; user@example.org` -> `user@example.org` (RFC 3464 address-type prefix). */
function typedAddress(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const semicolon = value.indexOf(';');
  const address = stripAngles(semicolon >= 0 ? value.slice(semicolon + 1) : value);
  return address === '' ? undefined : address;
}

function stripAngles(value: string): string {
  return value
    .trim()
    .replace(/^<(.*)>$/, '$1')
    .trim();
}
