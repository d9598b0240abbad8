/**
 * Recipient routing on the MX listener: what Herald does with mail for one RCPT address.
 * Three kinds of address are accepted. They are an enabled alias of a hosted domain, a valid
 * SRS address at one of the SRS domains (reversed to the original sender), and Herald's own
 * bounce address `MAILER-DAEMON@hostname`, whose mail is read and dropped. Every other address
 * is rejected at RCPT time, so Herald is no open relay and sends no backscatter.
 */
import type { Alias, DmarcForwardPolicy, Domain, Store } from '../store/types.js';
import { resolveAlias, splitAddress, type AliasMatch } from './aliases.js';
import { reverseRecipient, type SrsSource, SrsRouting } from './srs.js';

export type RecipientRoute =
  | {
      kind: 'alias';
      recipient: string;
      domain: Domain;
      alias: Alias;
      match: AliasMatch;
      targets: string[];
      dmarcPolicy: DmarcForwardPolicy;
    }
  | { kind: 'srs-reverse'; recipient: string; original: string }
  | { kind: 'own-bounce'; recipient: string }
  | {
      kind: 'reject';
      recipient: string;
      reason: 'not-hosted' | 'unknown-user' | 'disabled' | 'invalid-srs';
      /** The SRS engine's reason and message for `invalid-srs`, for the log. */
      detail?: string;
    };

export interface RouterOptions {
  store: Store;
  srs: SrsSource;
  /** Herald's host name; `MAILER-DAEMON@` this name is the own bounce address. */
  hostname: string;
  /** How long the list of SRS domains set by hosted domains is cached, in milliseconds. */
  domainCacheMs?: number;
  now?: () => number;
}

/** Local part of the address DSNs come from (RFC 3464 section 2 leaves it to the MTA). */
export const BOUNCE_LOCAL_PART = 'mailer-daemon';

export class RecipientRouter {
  private srsDomains: { domains: Set<string>; loadedAt: number } | undefined;
  private readonly now: () => number;

  constructor(private readonly options: RouterOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Decides what happens to mail for `recipient`. */
  async route(recipient: string): Promise<RecipientRoute> {
    const parts = splitAddress(recipient);
    if (!parts) return { kind: 'reject', recipient, reason: 'not-hosted' };

    if (this.isOwnBounceAddress(parts.localPart, parts.domain)) {
      return { kind: 'own-bounce', recipient };
    }

    const srs = await reverseRecipient(this.options.srs, recipient, await this.loadSrsDomains());
    if (srs.kind === 'reversed') return { kind: 'srs-reverse', recipient, original: srs.original };
    if (srs.kind === 'invalid') {
      return {
        kind: 'reject',
        recipient,
        reason: 'invalid-srs',
        detail: `${srs.reason}: ${srs.message}`,
      };
    }

    const lookup = await resolveAlias(this.options.store, recipient);
    switch (lookup.kind) {
      case 'not-hosted':
        return { kind: 'reject', recipient, reason: 'not-hosted' };
      case 'unknown-user':
        return { kind: 'reject', recipient, reason: 'unknown-user' };
      case 'disabled':
        return { kind: 'reject', recipient, reason: 'disabled' };
      case 'alias':
        return {
          kind: 'alias',
          recipient,
          domain: lookup.domain,
          alias: lookup.alias,
          match: lookup.match,
          targets: lookup.alias.targets,
          dmarcPolicy: lookup.alias.dmarcPolicy,
        };
    }
  }

  private isOwnBounceAddress(localPart: string, domain: string): boolean {
    return (
      localPart.toLowerCase() === BOUNCE_LOCAL_PART &&
      domain === this.options.hostname.toLowerCase().replace(/\.$/, '')
    );
  }

  /** The global SRS domain and every SRS domain a hosted domain sets, cached briefly. */
  private async loadSrsDomains(): Promise<Set<string>> {
    const maxAge = this.options.domainCacheMs ?? 10_000;
    const cached = this.srsDomains;
    if (cached && this.now() - cached.loadedAt < maxAge) return cached.domains;

    const domains = new Set<string>();
    const source = this.options.srs;
    const globalDomain = source instanceof SrsRouting ? source.default.domain : source.domain;
    if (globalDomain) domains.add(globalDomain.toLowerCase());
    for (const domain of await this.options.store.listDomains()) {
      if (domain.srsDomain) domains.add(domain.srsDomain.toLowerCase().replace(/\.$/, ''));
    }
    this.srsDomains = { domains, loadedAt: this.now() };
    return domains;
  }
}
