/**
 * Values for the header fields a server adds to a message: `Date` (RFC 5322 section 3.3),
 * `Message-ID` (section 3.6.4) and `Received` (RFC 5321 section 4.4).
 */
import { randomBytes } from 'node:crypto';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad2(value: number): string {
  return value.toString().padStart(2, '0');
}

/** Formats `date` as an RFC 5322 date-time in UTC, for example `Thu, 03 Dec 2026 22:51:20 +0000`. */
export function formatDate(date: Date): string {
  const day = DAYS[date.getUTCDay()] ?? 'Sun';
  const month = MONTHS[date.getUTCMonth()] ?? 'Jan';
  const time = `${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}:${pad2(date.getUTCSeconds())}`;
  return `${day}, ${pad2(date.getUTCDate())} ${month} ${date.getUTCFullYear()} ${time} +0000`;
}

/** Returns a new unique `Message-ID` value, `<time.random@domain>`, angle brackets included. */
export function createMessageId(domain: string, now: Date = new Date()): string {
  const unique = randomBytes(12).toString('base64url');
  return `<${now.getTime().toString(36)}.${unique}@${domain}>`;
}

/** The clauses of a `Received` field (RFC 5321 section 4.4); all but `by` and `date` optional. */
export interface ReceivedInfo {
  /** The name the client gave in EHLO/HELO, with its address, e.g. `client.example (192.0.2.1)`. */
  from?: string;
  by: string;
  /** The protocol: `SMTP`, `ESMTP`, `ESMTPS`, `ESMTPSA` (RFC 3848). */
  with?: string;
  /** The queue id. */
  id?: string;
  /** One recipient, when the message had exactly one. */
  for?: string;
  date: Date;
}

/** Formats the value of a `Received` field; fold it with `formatHeaderField`. */
export function formatReceived(info: ReceivedInfo): string {
  const clauses: string[] = [];
  if (info.from !== undefined) clauses.push(`from ${info.from}`);
  clauses.push(`by ${info.by}`);
  if (info.with !== undefined) clauses.push(`with ${info.with}`);
  if (info.id !== undefined) clauses.push(`id ${info.id}`);
  if (info.for !== undefined) clauses.push(`for <${info.for}>`);
  return `${clauses.join(' ')}; ${formatDate(info.date)}`;
}
