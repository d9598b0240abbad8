/**
 * The data a DKIM signature covers (RFC 6376 section 3.7): the signed header fields, chosen
 * from the bottom of the header up when a name occurs several times (section 5.4.2), then the
 * DKIM-Signature field itself with an empty `b=` and without its final CRLF.
 */
import type { HeaderField } from '../message/index.js';
import { canonicalizeHeader } from './canonicalize.js';
import type { Canonicalization } from './types.js';

/**
 * Returns the header data to sign or verify. A name in `signedHeaders` with no instance left is
 * skipped: it signs the absence of the field, which is how oversigning works.
 */
export function headerData(
  fields: readonly HeaderField[],
  signedHeaders: readonly string[],
  method: Canonicalization,
  signatureField: Buffer,
): Buffer {
  const parts: Buffer[] = [];
  const used = new Map<string, number>();
  for (const name of signedHeaders) {
    const key = name.toLowerCase();
    const field = pickFromBottom(fields, key, used.get(key) ?? 0);
    used.set(key, (used.get(key) ?? 0) + 1);
    if (field !== undefined) parts.push(canonicalizeHeader(field.raw, method));
  }
  const signature = canonicalizeHeader(signatureField, method);
  parts.push(stripFinalCrlf(signature));
  return Buffer.concat(parts);
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
