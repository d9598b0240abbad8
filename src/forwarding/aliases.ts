/**
 * Alias resolution for a recipient at a hosted domain. The order is the one Postfix virtual
 * alias maps use: the exact local part, then the local part without its `+tag` subaddress,
 * then the catch-all `*`. A disabled alias stops the search, so disabling `info@` answers 550
 * even when the domain has a catch-all.
 */
import type { Alias, Domain, Store } from '../store/types.js';

/** The character that starts a subaddress (`user+tag@domain` matches `user@domain`). */
export const SUBADDRESS_SEPARATOR = '+';

export type AliasMatch = 'exact' | 'subaddress' | 'catch-all';

export type AliasLookup =
  | { kind: 'alias'; domain: Domain; alias: Alias; match: AliasMatch }
  | { kind: 'disabled'; domain: Domain; alias: Alias; match: AliasMatch }
  | { kind: 'unknown-user'; domain: Domain }
  | { kind: 'not-hosted' };

/** Splits an address at its last `@`; the domain is lower-cased and loses a trailing dot. */
export function splitAddress(address: string): { localPart: string; domain: string } | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  return {
    localPart: address.slice(0, at),
    domain: address
      .slice(at + 1)
      .toLowerCase()
      .replace(/\.$/, ''),
  };
}

/** Looks up the alias that receives mail for `address`. */
export async function resolveAlias(store: Store, address: string): Promise<AliasLookup> {
  const parts = splitAddress(address);
  if (!parts) return { kind: 'not-hosted' };

  const domain = await store.getDomain(parts.domain);
  if (!domain) return { kind: 'not-hosted' };

  for (const [localPart, match] of candidateLocalParts(parts.localPart)) {
    const alias = await store.getAlias(domain.id, localPart);
    if (!alias) continue;
    return { kind: alias.enabled ? 'alias' : 'disabled', domain, alias, match };
  }
  return { kind: 'unknown-user', domain };
}

/** The local parts to try, in order. Aliases are stored lower-cased. */
function candidateLocalParts(localPart: string): [string, AliasMatch][] {
  const lower = localPart.toLowerCase();
  const candidates: [string, AliasMatch][] = [[lower, 'exact']];

  const separator = lower.indexOf(SUBADDRESS_SEPARATOR);
  if (separator > 0) candidates.push([lower.slice(0, separator), 'subaddress']);

  candidates.push(['*', 'catch-all']);
  return candidates;
}
