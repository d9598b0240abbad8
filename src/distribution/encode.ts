/**
 * Encodings for composed messages: RFC 2047 encoded words for non-ASCII header text and
 * quoted-printable bodies (RFC 2045 section 6.7) with lines of at most 76 characters.
 */

/** Encodes a header phrase or unstructured text as UTF-8 `B` encoded words when not ASCII. */
export function encodeHeaderText(text: string): string {
  if (/^[\x20-\x7e]*$/.test(text)) return text;
  // Each encoded word stays under 75 characters (RFC 2047 section 2): 45 bytes of UTF-8 make
  // 60 base64 characters, and a character is never split between two words.
  const words: string[] = [];
  let chunk = '';
  for (const char of text) {
    if (Buffer.byteLength(chunk + char) > 45) {
      words.push(chunk);
      chunk = '';
    }
    chunk += char;
  }
  if (chunk !== '') words.push(chunk);
  return words.map((word) => `=?UTF-8?B?${Buffer.from(word).toString('base64')}?=`).join(' ');
}

/** Formats a mailbox for From, To or Reply-To: a quoted or encoded display name and the address. */
export function formatMailbox(name: string, address: string): string {
  if (name === '') return address;
  if (/^[\x20-\x7e]*$/.test(name)) return `"${name.replace(/(["\\])/g, '\\$1')}" <${address}>`;
  return `${encodeHeaderText(name)} <${address}>`;
}

const QP_LINE = 76;

/** Encodes text as quoted-printable with CRLF line breaks; the input's line breaks are kept. */
export function encodeQuotedPrintable(text: string): string {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  return lines.map(encodeQpLine).join('\r\n');
}

function encodeQpLine(line: string): string {
  const bytes = Buffer.from(line, 'utf8');
  let output = '';
  let current = '';
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    const last = i === bytes.length - 1;
    const literal =
      (byte >= 33 && byte <= 126 && byte !== 61) || ((byte === 32 || byte === 9) && !last);
    const piece = literal
      ? String.fromCharCode(byte)
      : `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    // A soft line break `=` takes one column.
    if (current.length + piece.length > QP_LINE - 1) {
      output += `${current}=\r\n`;
      current = '';
    }
    current += piece;
  }
  return output + current;
}
