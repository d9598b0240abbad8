/**
 * Address syntax for SRS: splitting at the last `@`, quoted local parts (RFC 5321 section
 * 4.1.2, with the UTF-8 extension of RFC 6531) and the domain forms SRS can carry.
 *
 * Unquoted local parts are checked leniently: any mix of `atext` and dots passes, because real
 * senders such as `john..doe` exist and Postfix accepts them. Quoting is applied on output only
 * where the RFC 5321 grammar requires it.
 */

/** Maximum octets in a local part (RFC 5321 section 4.5.3.1.1). */
export const MAX_LOCAL_PART_OCTETS = 64;
/** Maximum octets in a domain (RFC 5321 section 4.5.3.1.2). */
export const MAX_DOMAIN_OCTETS = 255;
/** Maximum octets in an address: the 256-octet path limit less its angle brackets. */
export const MAX_ADDRESS_OCTETS = 254;

// atext of RFC 5322 section 3.2.3, plus any non-ASCII character (RFC 6531 section 3.3).
const ATEXT = "A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~\\u0080-\\u{10FFFF}";
const LENIENT_ATOM = new RegExp(`^[${ATEXT}.]+$`, 'u');
// ASCII-only forms of the patterns, tried first because they run faster than the Unicode ones.
const ASCII_ATOM = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+$/;
const ASCII_HOST_NAME = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;
const DOT_ATOM = new RegExp(`^[${ATEXT}]+(?:\\.[${ATEXT}]+)*$`, 'u');
// qtextSMTP and quoted-pairSMTP of RFC 5321 section 4.1.2, plus non-ASCII characters.
const QUOTED_STRING = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\u{10FFFF}]|\\[\x20-\x7e])*"$/u;
// Host names, A-labels and U-labels. They never contain `=`, so the SRS fields stay separable.
const HOST_NAME = /^[A-Za-z0-9_\-\u0080-\u{10FFFF}]+(?:\.[A-Za-z0-9_\-\u0080-\u{10FFFF}]+)*$/u;
// Address literals (RFC 5321 section 4.1.3) with dcontent less `=`, as above.
const ADDRESS_LITERAL = /^\[[\x21-\x3c\x3e-\x5a\x5e-\x7e]+\]$/;

/** Returns the length of a string in UTF-8 octets. */
export function octets(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/**
 * Returns true when a string takes more than `limit` UTF-8 octets. A UTF-16 code unit takes
 * one to three octets, so most strings are decided by their length without encoding them.
 */
export function exceedsOctets(text: string, limit: number): boolean {
  if (text.length > limit) return true;
  if (text.length * 3 <= limit) return false;
  return Buffer.byteLength(text, 'utf8') > limit;
}

/** An address split at its last `@`, the local part still in its written form. */
export interface SplitAddress {
  localPart: string;
  domain: string;
}

/** Splits at the last `@`, so an `@` inside a quoted local part stays in the local part. */
export function splitAddress(address: string): SplitAddress | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  return { localPart: address.slice(0, at), domain: address.slice(at + 1) };
}

/** A local part reduced to its content: quotes removed and quoted pairs resolved. */
export interface LocalPart {
  content: string;
  quoted: boolean;
}

/** Parses a written local part, or returns undefined when it is neither an atom nor quoted. */
export function parseLocalPart(written: string): LocalPart | undefined {
  if (written.startsWith('"')) {
    if (!QUOTED_STRING.test(written)) return undefined;
    const content = written.slice(1, -1).replace(/\\(.)/g, '$1');
    return content === '' ? undefined : { content, quoted: true };
  }
  const atom = ASCII_ATOM.test(written) || LENIENT_ATOM.test(written);
  return atom ? { content: written, quoted: false } : undefined;
}

/** Returns true when a written local part parses, quoted or not. */
export function isLocalPart(written: string): boolean {
  return parseLocalPart(written) !== undefined;
}

/** Quotes content as an RFC 5321 quoted string, escaping `"` and `\`. */
export function quote(content: string): string {
  return `"${content.replace(/["\\]/g, '\\$&')}"`;
}

/** Returns true when content needs no quotes: a dot-atom in the strict RFC 5322 sense. */
export function isDotAtom(content: string): boolean {
  return DOT_ATOM.test(content);
}

/** Returns true for a domain that SRS can carry: a host name or an address literal. */
export function isDomain(domain: string): boolean {
  if (exceedsOctets(domain, MAX_DOMAIN_OCTETS)) return false;
  return ASCII_HOST_NAME.test(domain) || HOST_NAME.test(domain) || ADDRESS_LITERAL.test(domain);
}

/** Compares two domains ignoring case, as DNS does for ASCII names (RFC 4343). */
export function sameDomain(a: string, b: string): boolean {
  return a.length === b.length && a.toLowerCase() === b.toLowerCase();
}
