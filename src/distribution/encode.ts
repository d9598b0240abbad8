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
const HEX = Buffer.from('0123456789ABCDEF', 'latin1');
const EQUALS = 0x3d;

/**
 * Input and output space reused by every call whose text fits, since the encoded text leaves
 * as a string copy. Without them each body part of a campaign message allocated two buffers,
 * one of four times its size. A larger text gets buffers of its own, so these never grow.
 */
const SCRATCH_INPUT_BYTES = 64 * 1024;
/** Worst case: every byte encoded as three, plus a soft break (=CRLF) per 25 bytes. */
const worstCase = (inputBytes: number): number => inputBytes * 4 + 16;
let scratch: { input: Buffer; output: Buffer } | undefined;

/** Encodes text as quoted-printable with CRLF line breaks; the input's line breaks are kept. */
export function encodeQuotedPrintable(text: string): string {
  const normalized = text.replace(/\r\n?/g, '\n');
  let input: Buffer;
  let output: Buffer;
  // A UTF-16 code unit takes at most three bytes of UTF-8.
  if (normalized.length * 3 <= SCRATCH_INPUT_BYTES) {
    scratch ??= {
      input: Buffer.allocUnsafe(SCRATCH_INPUT_BYTES),
      output: Buffer.allocUnsafe(worstCase(SCRATCH_INPUT_BYTES)),
    };
    input = scratch.input.subarray(0, scratch.input.write(normalized, 'utf8'));
    output = scratch.output;
  } else {
    input = Buffer.from(normalized, 'utf8');
    output = Buffer.allocUnsafe(worstCase(input.length));
  }
  let length = 0;
  let column = 0;

  for (let index = 0; index < input.length; index++) {
    const byte = input[index]!;
    if (byte === 0x0a) {
      output[length++] = 0x0d;
      output[length++] = 0x0a;
      column = 0;
      continue;
    }
    const next = input[index + 1];
    const endOfLine = next === undefined || next === 0x0a;
    const literal =
      (byte >= 33 && byte <= 126 && byte !== EQUALS) || ((byte === 32 || byte === 9) && !endOfLine);
    const width = literal ? 1 : 3;
    // A soft line break `=` takes one column (RFC 2045 section 6.7, rule 5).
    if (column + width > QP_LINE - 1) {
      output[length++] = EQUALS;
      output[length++] = 0x0d;
      output[length++] = 0x0a;
      column = 0;
    }
    if (literal) {
      output[length++] = byte;
    } else {
      output[length++] = EQUALS;
      output[length++] = HEX[byte >> 4]!;
      output[length++] = HEX[byte & 15]!;
    }
    column += width;
  }
  return output.toString('latin1', 0, length);
}
