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
 * skipped: it signs the absence of the field, which is how oversigning works. A name is
 * matched case-insensitively.
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
 * overwrites: use it before calling again. `signatureField` as a string is Latin-1. `groups`
 * is `groupFields(fields)`, which a caller signing several times can compute once.
 */
export function headerDataView(
  fields: readonly HeaderField[],
  signedHeaders: readonly string[],
  method: Canonicalization,
  signatureField: Buffer | string,
  groups: ReadonlyMap<string, readonly HeaderField[]> = groupFields(fields),
): Buffer {
  const selected: Buffer[] = [];
  const used = new Map<string, number>();
  for (const name of signedHeaders) {
    const key = name.toLowerCase();
    const skip = used.get(key) ?? 0;
    used.set(key, skip + 1);
    const instances = groups.get(key);
    const field = instances?.[instances.length - 1 - skip];
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

/**
 * Groups the fields by lower-case name, each group in header order, so that picking the fields
 * of `h=` from the bottom up is one map lookup per name.
 */
export function groupFields(fields: readonly HeaderField[]): Map<string, HeaderField[]> {
  const groups = new Map<string, HeaderField[]>();
  for (const field of fields) {
    const group = groups.get(field.key);
    if (group === undefined) groups.set(field.key, [field]);
    else group.push(field);
  }
  return groups;
}

function stripFinalCrlf(data: Buffer): Buffer {
  const length = data.length;
  if (length >= 2 && data[length - 2] === 0x0d && data[length - 1] === 0x0a)
    return data.subarray(0, length - 2);
  return data;
}
