/** Syntax checks and normalisation for the domain names and addresses that operators type. */

/** Checks a DNS host name (RFC 1123 section 2.1 labels); returns it lower-cased, without a trailing dot. */
export function normaliseDomain(input: string): string {
  const name = input.trim().toLowerCase().replace(/\.$/, '');
  const labels = name.split('.');
  const valid =
    name.length > 0 &&
    name.length <= 253 &&
    labels.length >= 2 &&
    labels.every((label) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(label));
  if (!valid) throw new InvalidInputError(`invalid domain name: ${JSON.stringify(input)}`);
  return name;
}

/**
 * Splits `local@domain` into a lower-cased local part (or `*` for a catch-all) and a domain.
 * Local parts keep to the RFC 5321 dot-atom characters, at most 64 octets.
 */
export function parseAliasAddress(input: string): { localPart: string; domain: string } {
  const at = input.lastIndexOf('@');
  if (at <= 0)
    throw new InvalidInputError(`invalid address ${JSON.stringify(input)}: expected local@domain`);
  const localPart = input.slice(0, at).toLowerCase();
  const domain = normaliseDomain(input.slice(at + 1));
  if (localPart !== '*' && !isDotAtom(localPart)) {
    throw new InvalidInputError(`invalid local part in ${JSON.stringify(input)}`);
  }
  return { localPart, domain };
}

/** Checks a forwarding target: a mailbox `local@domain` with a plausible domain. */
export function normaliseTarget(input: string): string {
  const address = input.trim();
  const at = address.lastIndexOf('@');
  const localPart = address.slice(0, at);
  if (at <= 0 || !isDotAtom(localPart)) {
    throw new InvalidInputError(`invalid target address: ${JSON.stringify(input)}`);
  }
  return `${localPart}@${normaliseDomain(address.slice(at + 1))}`;
}

function isDotAtom(localPart: string): boolean {
  return (
    Buffer.byteLength(localPart) <= 64 &&
    /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/.test(localPart)
  );
}

/** Input from an operator that is malformed; the CLI exits 2 and the API responds 400. */
export class InvalidInputError extends Error {
  override name = 'InvalidInputError';
}

/** A domain, alias or credential that does not exist; the CLI exits 1 and the API responds 404. */
export class NotFoundError extends Error {
  override name = 'NotFoundError';
}

/** An object that exists already; the CLI exits 1 and the API responds 409. */
export class ConflictError extends Error {
  override name = 'ConflictError';
}
