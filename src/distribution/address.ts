/**
 * Address checks for list imports and campaign settings. The rule is deliberately narrower
 * than RFC 5321: a dot-atom local part (RFC 5322 section 3.2.3) of ASCII characters and a
 * domain of LDH labels with at least one dot, because a list address that only a few
 * receivers accept hurts the domain's reputation more than a rejected import row.
 */

const LOCAL_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$/;
const DOMAIN_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

export type AddressCheck = { ok: true; address: string } | { ok: false; reason: string };

/** Checks one address and returns it trimmed, or the reason it is invalid. */
export function checkAddress(input: string): AddressCheck {
  const address = input.trim();
  if (address === '') return { ok: false, reason: 'missing address' };
  if (address.length > 254) return { ok: false, reason: 'address longer than 254 octets' };

  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return { ok: false, reason: 'address has no @' };
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);

  if (local.length > 64) return { ok: false, reason: 'local part longer than 64 octets' };
  if (!local.split('.').every((atom) => LOCAL_ATOM.test(atom))) {
    return { ok: false, reason: `invalid local part "${local}"` };
  }
  const labels = domain.split('.');
  if (labels.length < 2 || !labels.every((label) => DOMAIN_LABEL.test(label))) {
    return { ok: false, reason: `invalid domain "${domain}"` };
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) {
    return { ok: false, reason: `invalid domain "${domain}"` };
  }
  return { ok: true, address };
}

/**
 * Returns the first control character of a subscriber's name or field value, described for an
 * error, or undefined when there is none. NUL and the other C0 controls except tab, CR and LF
 * are rejected, because RFC 5322 allows none of them in a message and PostgreSQL text cannot
 * contain NUL.
 */
export function controlCharacterIn(value: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  const match = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.exec(value);
  if (!match) return undefined;
  return `U+${match[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Lower-cased form used to match subscribers and suppressions. */
export function addressKey(address: string): string {
  return address.trim().toLowerCase();
}
