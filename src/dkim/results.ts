/**
 * Authentication-Results (RFC 8601) from DKIM verdicts: one `dkim=` resinfo per signature with
 * its `header.d`, `header.i`, `header.s`, `header.a` and `header.b` properties (RFC 6008 for
 * `header.b`), and a `reason=` when the verdict is not a plain pass.
 */
import type { DkimResult } from './types.js';

/**
 * Renders the field value (without the `Authentication-Results:` name), unfolded; fold it with
 * `formatHeaderField`. `extra` holds further resinfo such as `spf=pass smtp.mailfrom=...`.
 */
export function formatAuthenticationResults(
  authservId: string,
  results: readonly DkimResult[],
  extra: readonly string[] = [],
): string {
  const resinfo = results.map(formatResinfo);
  return [authservId, ...resinfo, ...extra].join('; ');
}

function formatResinfo(result: DkimResult): string {
  const parts = [`dkim=${result.result}`];
  if (result.keyBits !== undefined) parts.push(`(${result.keyBits}-bit key)`);
  if (result.reason !== undefined && result.result !== 'none')
    parts.push(`reason=${quote(result.reason)}`);
  if (result.domain !== undefined) parts.push(`header.d=${result.domain}`);
  if (result.identity !== undefined) parts.push(`header.i=${propertyValue(result.identity)}`);
  if (result.selector !== undefined) parts.push(`header.s=${result.selector}`);
  if (result.algorithm !== undefined) parts.push(`header.a=${result.algorithm}`);
  if (result.headerB !== undefined) parts.push(`header.b=${propertyValue(result.headerB)}`);
  return parts.join(' ');
}

/** A quoted-string (RFC 5322 section 3.2.4) with `"` and `\` escaped and line breaks removed. */
function quote(text: string): string {
  return `"${text.replace(/[\r\n]+/g, ' ').replace(/(["\\])/g, '\\$1')}"`;
}

/** A property value is a token or, for characters a token cannot hold, a quoted-string. */
function propertyValue(value: string): string {
  return /^[!#-'*+\-./0-9=?@A-Z^-~]+$/.test(value) ? value : quote(value);
}
