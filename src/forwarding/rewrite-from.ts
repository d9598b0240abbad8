/**
 * The `rewrite-from` DMARC policy of an alias. When a forwarded message would fail DMARC at
 * the destination, its From becomes the alias address, at a hosted domain that Herald signs
 * for. The author's name stays in the display name and the author's From goes into Reply-To,
 * so replies still reach the author. This is the mitigation mailing lists use
 * (RFC 7960 section 4.1.3.3). The message is then signed with the alias domain's keys, which
 * is what makes it pass DMARC; every other header field and the body stay as they were.
 */
import {
  formatHeaderField,
  getHeader,
  parseAddressList,
  parseHeaderFields,
  splitMessage,
} from '../message/index.js';

/** Encodes a display name as a quoted string, or as an RFC 2047 encoded word if it is not ASCII. */
export function encodeDisplayName(name: string): string {
  if (/^[\x20-\x7e]*$/.test(name)) return `"${name.replace(/["\\]/g, '\\$&')}"`;
  return `=?UTF-8?B?${Buffer.from(name, 'utf8').toString('base64')}?=`;
}

/**
 * Returns the message with its From field replaced by `aliasAddress` and, when it has no
 * Reply-To, a Reply-To with the original From value. Returns undefined when the message has
 * no From field to rewrite.
 */
export function rewriteFrom(message: Buffer, aliasAddress: string): Buffer | undefined {
  const { header, body, hasBody } = splitMessage(message);
  const fields = parseHeaderFields(header);
  const original = getHeader(fields, 'from');
  if (original === undefined) return undefined;

  const author = parseAddressList(original)[0];
  const authorName = author?.name ?? author?.address ?? original;
  const domain = aliasAddress.slice(aliasAddress.lastIndexOf('@') + 1);
  const newFrom = formatHeaderField(
    'From',
    `${encodeDisplayName(`${authorName} via ${domain}`)} <${aliasAddress}>`,
  );
  const hasReplyTo = fields.some((field) => field.key === 'reply-to');

  const parts: Buffer[] = [];
  let replaced = false;
  for (const field of fields) {
    if (field.key === 'from') {
      // Only the first From is replaced; a second one (invalid anyway) is dropped.
      if (!replaced) {
        parts.push(Buffer.from(newFrom, 'utf8'));
        if (!hasReplyTo) parts.push(Buffer.from(formatHeaderField('Reply-To', original), 'utf8'));
      }
      replaced = true;
      continue;
    }
    parts.push(field.raw);
  }
  if (hasBody) parts.push(Buffer.from('\r\n'), body);
  return Buffer.concat(parts);
}
