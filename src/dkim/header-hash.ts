/**
 * The data a DKIM signature covers (RFC 6376 section 3.7). It is the signed header fields, chosen
 * from the bottom of the header up when a name occurs several times (section 5.4.2). The
 * DKIM-Signature field itself follows, with an empty `b=` and without its final CRLF.
 */
import type { HeaderField } from '../message/index.js';
import { writeRelaxedHeader } from './canonicalize.js';
import type { Canonicalization } from './types.js';

/**
 * Returns the header data to sign or verify. A name in `signedHeaders` with no instance left is
 * skipped: it signs the absence of the field, which is how oversigning works.
 */
export function headerData(
  fields: readonly HeaderField[],
  signedHeaders: readonly string[],
  method: Canonicalization,
  signatureField: Buffer | string,
): Buffer {
  return Buffer.from(headerDataView(fields, signedHeaders, method, signatureField));
}

/** Reused by `headerDataView`, so signing a message allocates no buffer for its header data. */
let scratch = Buffer.allocUnsafeSlow(4096);

/**
 * Returns the header data like `headerData`, as a view of a buffer that the next call
 * overwrites: use it before calling again. `signatureField` as a string is Latin-1.
 */
export function headerDataView(
  fields: readonly HeaderField[],
  signedHeaders: readonly string[],
  method: Canonicalization,
  signatureField: Buffer | string,
): Buffer {
  const selected: Buffer[] = [];
  const used = new Map<string, number>();
  for (const name of signedHeaders) {
    const key = name.toLowerCase();
    const skip = used.get(key) ?? 0;
    const field = pickFromBottom(fields, key, skip);
    used.set(key, skip + 1);
    if (field !== undefined) selected.push(field.raw);
  }
  // Relaxed forms are never longer than the raw field plus CRLF.
  let capacity = signatureField.length + 2;
  for (const raw of selected) capacity += raw.length + 2;
  if (scratch.length < capacity)
    scratch = Buffer.allocUnsafeSlow(Math.max(capacity, scratch.length * 2));
  const output = scratch;
  let offset = 0;
  for (const raw of selected) {
    if (method === 'simple') offset += raw.copy(output, offset);
    else offset = writeRelaxedHeader(raw, output, offset);
  }
  const fieldStart = offset;
  const fieldLength =
    typeof signatureField === 'string'
      ? output.write(signatureField, fieldStart, 'latin1')
      : signatureField.copy(output, fieldStart);
  offset += fieldLength;
  if (method === 'relaxed') {
    let raw = output.subarray(fieldStart, fieldStart + fieldLength);
    // In place when the field has a colon: the relaxed form then writes each byte at or before
    // the offset it reads from. Without one it starts with an added colon, so it needs a copy.
    if (raw.indexOf(0x3a) === -1) raw = Buffer.from(raw);
    offset = writeRelaxedHeader(raw, output, fieldStart);
  }
  return stripFinalCrlf(output.subarray(0, offset));
}

/** Returns the `skip`-th field named `key` counting from the bottom, or undefined. */
function pickFromBottom(
  fields: readonly HeaderField[],
  key: string,
  skip: number,
): HeaderField | undefined {
  let remaining = skip;
  for (let index = fields.length - 1; index >= 0; index--) {
    const field = fields[index];
    if (field?.key !== key) continue;
    if (remaining === 0) return field;
    remaining--;
  }
  return undefined;
}

function stripFinalCrlf(data: Buffer): Buffer {
  const length = data.length;
  if (length >= 2 && data[length - 2] === 0x0d && data[length - 1] === 0x0a)
    return data.subarray(0, length - 2);
  return data;
}
