/**
 * The DNS lookups the setup checker makes. Mail lookups (TXT, MX, addresses) go through the
 * mail resolver; the checker also reads CNAME records (delegated DKIM) and PTR records
 * (forward-confirmed reverse DNS), which delivery never needs, through a second c-ares
 * resolver pointed at the same servers.
 */
import { promises as dnsPromises } from 'node:dns';

import { Resolver, toDnsError, type MailResolver, type ResolverOptions } from './resolver.js';

export interface CheckLookups extends MailResolver {
  /** CNAME targets of a name, without trailing dots; throws `DnsError` like the others. */
  resolveCname(name: string): Promise<string[]>;
  /** PTR names of an IPv4 or IPv6 address. */
  reverse(address: string): Promise<string[]>;
}

/** A resolver for the checker, over the servers given as `host:port` (empty uses the system's). */
export function createCheckLookups(options: ResolverOptions = {}): CheckLookups {
  const mail = new Resolver(options);
  const extra = new dnsPromises.Resolver({
    timeout: options.timeoutMs ?? 5_000,
    tries: options.tries ?? 2,
  });
  if (options.servers && options.servers.length > 0) extra.setServers(options.servers);

  return {
    resolveMx: (domain) => mail.resolveMx(domain),
    resolveAddresses: (host) => mail.resolveAddresses(host),
    resolveTxt: (name) => mail.resolveTxt(name),
    async resolveCname(name) {
      try {
        const targets = await extra.resolveCname(name);
        return targets.map((target) => target.toLowerCase().replace(/\.$/, ''));
      } catch (error) {
        throw toDnsError(error, name, 'CNAME');
      }
    },
    async reverse(address) {
      try {
        return await extra.reverse(address);
      } catch (error) {
        throw toDnsError(error, address, 'PTR');
      }
    },
  };
}
