/**
 * Just enough MIME (RFC 2045, RFC 2046) to read delivery reports and feedback reports:
 * Content-Type parameters, multipart bodies and the two transfer encodings, on top of the
 * header handling in `src/message/`. General parsers such as mailparser fold
 * `message/delivery-status` into the text body, and the report parts are what bounce
 * handling needs.
 */
import {
  getHeader,
  parseHeaderFields,
  splitMessage,
  toCrlf,
  type HeaderField,
} from '../message/index.js';

export type { HeaderField };

export interface MimePart {
  headers: HeaderField[];
  /** Lower-cased `type/subtype`; `text/plain` when the part has no Content-Type. */
  contentType: string;
  params: Record<string, string>;
  /** Body with the transfer encoding removed. */
  body: Buffer;
}

/** Parses a header block given as text (a report's field groups use header syntax). */
export function parseFieldBlock(block: string): HeaderField[] {
  return parseHeaderFields(toCrlf(Buffer.from(block.replace(/\s+$/, '') + '\r\n', 'utf8')));
}

/** Header fields of a message or of a part. */
export function messageHeaders(message: Buffer): HeaderField[] {
  return parseHeaderFields(splitMessage(toCrlf(message)).header).filter(
    (field) => field.key !== '',
  );
}

/** Parses `type/subtype; name=value; name="quoted value"`. */
export function parseContentType(value: string | undefined): {
  type: string;
  params: Record<string, string>;
} {
  if (!value) return { type: 'text/plain', params: {} };
  const [type = '', ...rest] = splitParams(value);
  const params: Record<string, string> = {};
  for (const item of rest) {
    const equals = item.indexOf('=');
    if (equals <= 0) continue;
    let paramValue = item.slice(equals + 1).trim();
    if (paramValue.startsWith('"') && paramValue.endsWith('"')) {
      paramValue = paramValue.slice(1, -1).replace(/\\(.)/g, '$1');
    }
    params[item.slice(0, equals).trim().toLowerCase()] = paramValue;
  }
  return { type: type.trim().toLowerCase() || 'text/plain', params };
}

/** Splits at semicolons outside quoted strings. */
function splitParams(value: string): string[] {
  const items: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const char = value[i]!;
    if (char === '\\' && quoted) {
      current += char + (value[i + 1] ?? '');
      i += 1;
    } else if (char === '"') {
      quoted = !quoted;
      current += char;
    } else if (char === ';' && !quoted) {
      items.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  items.push(current);
  return items;
}

/**
 * Flattens a message into its leaf parts in document order. A `message/rfc822` part is a leaf
 * (its body is the enclosed message). Nesting stops at depth 8 so that a hostile message
 * cannot make the walk recurse without end.
 */
export function leafParts(message: Buffer, depth = 0): MimePart[] {
  const parts = splitMessage(toCrlf(message));
  const headers = parseHeaderFields(parts.header).filter((field) => field.key !== '');
  const { type, params } = parseContentType(getHeader(headers, 'content-type'));
  if (type.startsWith('multipart/') && params.boundary && depth < 8) {
    return splitMultipart(parts.body, params.boundary).flatMap((part) =>
      leafParts(part, depth + 1),
    );
  }
  const encoding = (getHeader(headers, 'content-transfer-encoding') ?? '').toLowerCase();
  return [{ headers, contentType: type, params, body: decodeTransfer(parts.body, encoding) }];
}

/** Splits a multipart body at its boundary lines (RFC 2046 section 5.1.1). */
function splitMultipart(body: Buffer, boundary: string): Buffer[] {
  const delimiter = `--${boundary}`;
  const parts: Buffer[] = [];
  let current: string[] | undefined;
  for (const line of body.toString('latin1').split('\r\n')) {
    const trimmed = line.trimEnd();
    if (trimmed === delimiter || trimmed === `${delimiter}--`) {
      // The CRLF before a boundary line belongs to the boundary, so joining drops it.
      if (current) parts.push(Buffer.from(current.join('\r\n'), 'latin1'));
      if (trimmed !== delimiter) return parts;
      current = [];
      continue;
    }
    current?.push(line);
  }
  // A body cut short before its closing boundary keeps its last part.
  if (current && current.length > 0) parts.push(Buffer.from(current.join('\r\n'), 'latin1'));
  return parts;
}

function decodeTransfer(body: Buffer, encoding: string): Buffer {
  if (encoding === 'base64') {
    return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  }
  if (encoding === 'quoted-printable') {
    const text = body
      .toString('latin1')
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-Fa-f]{2})/g, (_match, hex: string) =>
        String.fromCharCode(parseInt(hex, 16)),
      );
    return Buffer.from(text, 'latin1');
  }
  return body;
}

/** Decodes a text part with its charset, falling back to UTF-8 for unknown labels. */
export function partText(part: MimePart): string {
  const charset = part.params.charset ?? 'utf-8';
  try {
    return new TextDecoder(charset).decode(part.body);
  } catch {
    return part.body.toString('utf8');
  }
}
