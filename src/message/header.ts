/**
 * RFC 5322 header fields as bytes. A field is kept exactly as it arrived (its name, colon, value,
 * folding and final CRLF), because DKIM signs those bytes and raw UTF-8 headers (RFC 6532) must
 * not pass through a lossy string conversion. Only SP and HTAB count as whitespace (RFC 5322
 * section 2.2.2): JavaScript's `\s` also matches U+00A0 and other characters whose UTF-8 or
 * Latin-1 forms appear inside non-ASCII header text.
 *
 * The functions expect CRLF line endings; pass input through `toCrlf` first.
 */
import { indexOfHeaderEnd } from './line-endings.js';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** True for the two whitespace bytes of RFC 5322 (WSP): SP and HTAB. */
export function isWsp(byte: number | undefined): boolean {
  return byte === SP || byte === HTAB;
}

/** One header field, raw. */
export interface HeaderField {
  /** The field name as written (case preserved), decoded as Latin-1; empty when no colon. */
  readonly name: string;
  /** The field name in lower case, for comparisons (field names are ASCII, case-insensitive). */
  readonly key: string;
  /** The whole field: name, colon, value, any folding, and the final CRLF when present. */
  readonly raw: Buffer;
}

/** A message split at the blank line that ends its header section. */
export interface MessageParts {
  /** The header section, every field with its CRLF; excludes the blank line. */
  header: Buffer;
  /** The body after the blank line; empty when the message has no blank line. */
  body: Buffer;
  /** True when a blank line separated header and body. */
  hasBody: boolean;
}

/** Splits a CRLF message into header section and body. */
export function splitMessage(message: Buffer): MessageParts {
  const headerEnd = indexOfHeaderEnd(message);
  if (headerEnd === -1)
    return { header: message, body: message.subarray(message.length), hasBody: false };
  return {
    header: message.subarray(0, headerEnd),
    body: message.subarray(headerEnd + 2),
    hasBody: true,
  };
}

/**
 * Splits a header section into fields. A line that starts with SP or HTAB continues the field
 * above it. A line without a colon becomes a field with an empty name, so no byte is lost.
 */
export function parseHeaderFields(header: Buffer): HeaderField[] {
  const fields: HeaderField[] = [];
  let start = 0;
  while (start < header.length) {
    const end = findFieldEnd(header, start);
    fields.push(makeField(header.subarray(start, end)));
    start = end;
  }
  return fields;
}

/** Returns the offset just past the field that starts at `start`, continuation lines included. */
function findFieldEnd(header: Buffer, start: number): number {
  let lineStart = start;
  for (;;) {
    const lf = header.indexOf(LF, lineStart);
    if (lf === -1) return header.length;
    const next = lf + 1;
    if (next >= header.length || !isWsp(header[next])) return next;
    lineStart = next;
  }
}

function makeField(raw: Buffer): HeaderField {
  const colon = raw.indexOf(COLON);
  const lf = raw.indexOf(LF);
  // A colon past the first line break belongs to a continuation line, not to the name.
  if (colon === -1 || (lf !== -1 && colon > lf)) return { name: '', key: '', raw };
  let nameEnd = colon;
  // RFC 5322 forbids WSP before the colon, but the obsolete syntax (section 4.5) allowed it.
  while (nameEnd > 0 && isWsp(raw[nameEnd - 1])) nameEnd--;
  const name = raw.toString('latin1', 0, nameEnd);
  return { name, key: name.toLowerCase(), raw };
}

/** Returns the bytes after the colon, up to but excluding the final CRLF; folding kept. */
export function rawFieldValue(field: HeaderField): Buffer {
  const colon = field.raw.indexOf(COLON);
  let end = field.raw.length;
  if (end >= 2 && field.raw[end - 2] === CR && field.raw[end - 1] === LF) end -= 2;
  return field.raw.subarray(colon + 1, end);
}

/** Removes every CRLF that a WSP follows (RFC 5322 section 2.2.3). */
export function unfold(value: Buffer): Buffer {
  let index = value.indexOf(LF);
  if (index === -1) return value;
  const parts: Buffer[] = [];
  let copied = 0;
  while (index !== -1) {
    if (index > 0 && value[index - 1] === CR && isWsp(value[index + 1])) {
      parts.push(value.subarray(copied, index - 1));
      copied = index + 1;
    }
    index = value.indexOf(LF, index + 1);
  }
  parts.push(value.subarray(copied));
  return Buffer.concat(parts);
}

/** Removes leading and trailing SP and HTAB, and nothing else. */
export function trimWsp(value: Buffer): Buffer {
  let start = 0;
  let end = value.length;
  while (start < end && isWsp(value[start])) start++;
  while (end > start && isWsp(value[end - 1])) end--;
  return value.subarray(start, end);
}

/** Returns a field's value unfolded and trimmed, decoded as UTF-8 (RFC 6532). */
export function fieldValue(field: HeaderField): string {
  return trimWsp(unfold(rawFieldValue(field))).toString('utf8');
}

/** Returns the value of the first field named `name` (any case), or undefined. */
export function getHeader(fields: readonly HeaderField[], name: string): string | undefined {
  const key = name.toLowerCase();
  const field = fields.find((candidate) => candidate.key === key);
  return field === undefined ? undefined : fieldValue(field);
}

/** Returns the values of every field named `name` (any case), top to bottom. */
export function getHeaders(fields: readonly HeaderField[], name: string): string[] {
  const key = name.toLowerCase();
  return fields.filter((field) => field.key === key).map(fieldValue);
}

/** Returns a copy of `message` with `lines` (complete header fields, CRLF-terminated) on top. */
export function prependHeaderFields(message: Buffer, lines: string): Buffer {
  return Buffer.concat([Buffer.from(lines, 'utf8'), message]);
}
