/**
 * The resolver delivery and authentication checks use: Node's c-ares resolver pointed at the
 * configured servers, with the mail-specific rules on top. `resolveMx` returns the hosts to try
 * in order (RFC 5321 section 5.1), falls back to the domain's own A/AAAA records when it has no
 * MX, and reports a null MX (RFC 7505) as a permanent failure. Every failure is a `DnsError`
 * whose `code` distinguishes a permanent answer (no such domain) from a temporary one (SERVFAIL,
 * timeout), which is what the delivery verdict needs.
 *
 * It does not cache answers or validate DNSSEC.
 */
import { promises as dnsPromises } from 'node:dns';
import net from 'node:net';

export type DnsErrorCode =
  /** The name does not exist (NXDOMAIN). Permanent. */
  | 'NOTFOUND'
  /** The name exists but has no record of the type asked for. Permanent. */
  | 'NODATA'
  /** The domain publishes a null MX: it accepts no mail (RFC 7505). Permanent. */
  | 'NULL_MX'
  /** The server failed (SERVFAIL) or refused the query. Temporary. */
  | 'SERVFAIL'
  /** No answer within the time allowed. Temporary. */
  | 'TIMEOUT'
  /** Any other failure: no server reachable, malformed reply. Temporary. */
  | 'FAILED';

/** A failed lookup, with the name and type asked for. */
export class DnsError extends Error {
  override readonly name = 'DnsError';

  constructor(
    readonly code: DnsErrorCode,
    readonly hostname: string,
    readonly rrtype: string,
    detail?: string,
  ) {
    super(errorMessage(code, hostname, rrtype, detail));
  }

  /** True when asking again later cannot give another answer. */
  get permanent(): boolean {
    return this.code === 'NOTFOUND' || this.code === 'NODATA' || this.code === 'NULL_MX';
  }
}

function errorMessage(code: DnsErrorCode, hostname: string, rrtype: string, detail?: string) {
  const suffix = detail ? ` (${detail})` : '';
  return `DNS lookup of ${rrtype} ${hostname} failed: ${describe(code)}${suffix}`;
}

function describe(code: DnsErrorCode): string {
  switch (code) {
    case 'NOTFOUND':
      return 'domain not found';
    case 'NODATA':
      return 'no records of this type';
    case 'NULL_MX':
      return 'the domain accepts no mail (null MX)';
    case 'SERVFAIL':
      return 'server failure';
    case 'TIMEOUT':
      return 'timed out';
    case 'FAILED':
      return 'lookup failed';
  }
}

/** One host to try for a domain, in the order `resolveMx` returns them. */
export interface MxHost {
  exchange: string;
  priority: number;
  /** True when the domain has no MX and the host is the domain itself (RFC 5321 section 5.1). */
  implicit: boolean;
}

export interface ResolverOptions {
  /** DNS servers as `host:port` (`[addr]:port` for IPv6) or bare addresses; empty: the system's. */
  servers?: string[];
  /** Time per try in milliseconds. */
  timeoutMs?: number;
  /** Tries per server before a lookup fails with TIMEOUT. */
  tries?: number;
}

/** The lookups the rest of Herald depends on; tests and other transports can implement it. */
export interface MailResolver {
  resolveMx(domain: string): Promise<MxHost[]>;
  /** IPv4 addresses first, then IPv6, for a host; throws NOTFOUND or NODATA when there are none. */
  resolveAddresses(host: string): Promise<string[]>;
  /** Same contract as `dns.promises.Resolver#resolveTxt`: each record is its list of strings. */
  resolveTxt(name: string): Promise<string[][]>;
}

const DEFAULT_TIMEOUT_MS = 5_000;
const DEFAULT_TRIES = 2;

export class Resolver implements MailResolver {
  private readonly resolver: dnsPromises.Resolver;

  constructor(options: ResolverOptions = {}) {
    this.resolver = new dnsPromises.Resolver({
      timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      tries: options.tries ?? DEFAULT_TRIES,
    });
    if (options.servers && options.servers.length > 0) {
      this.resolver.setServers(options.servers);
    }
  }

  /**
   * Resolves the hosts to try for mail to `domain`: MX hosts by ascending preference, equal
   * preferences shuffled (RFC 5321 section 5.1), or the domain itself when it has no MX
   * records at all. Throws `DnsError` NULL_MX for a null MX, NOTFOUND when the domain does not
   * exist, and a temporary code when the answer could not be obtained.
   */
  async resolveMx(domain: string): Promise<MxHost[]> {
    const name = domain.toLowerCase().replace(/\.$/, '');
    let records: { exchange: string; priority: number }[];
    try {
      records = await this.resolver.resolveMx(name);
    } catch (error) {
      const mapped = toDnsError(error, name, 'MX');
      if (mapped.code !== 'NODATA') throw mapped;
      // RFC 5321 section 5.1: no MX records means the domain itself is the implicit MX.
      await this.resolveAddresses(name);
      return [{ exchange: name, priority: 0, implicit: true }];
    }

    if (isNullMx(records)) throw new DnsError('NULL_MX', name, 'MX');
    // RFC 7505 section 3 forbids a null MX beside other MX records. If a domain has both, the
    // real ones are used.
    const usable = records.filter((record) => normalizeHost(record.exchange) !== '');
    return orderByPreference(usable).map((record) => ({
      exchange: normalizeHost(record.exchange),
      priority: record.priority,
      implicit: false,
    }));
  }

  async resolveAddresses(host: string): Promise<string[]> {
    const name = normalizeHost(host);
    if (net.isIP(name)) return [name];

    const [v4, v6] = await Promise.allSettled([
      this.resolver.resolve4(name),
      this.resolver.resolve6(name),
    ]);
    const addresses = [
      ...(v4.status === 'fulfilled' ? v4.value : []),
      ...(v6.status === 'fulfilled' ? v6.value : []),
    ];
    if (addresses.length > 0) return addresses;

    // Report the more useful failure: a temporary one wins, since it may hide real records.
    const errors = [v4, v6]
      .filter((result): result is PromiseRejectedResult => result.status === 'rejected')
      .map((result, index) => toDnsError(result.reason, name, index === 0 ? 'A' : 'AAAA'));
    throw (
      errors.find((error) => !error.permanent) ?? errors[0] ?? new DnsError('NODATA', name, 'A')
    );
  }

  async resolveTxt(name: string): Promise<string[][]> {
    try {
      return await this.resolver.resolveTxt(name);
    } catch (error) {
      throw toDnsError(error, name, 'TXT');
    }
  }
}

/** Builds a resolver from the `dns` settings of the configuration. */
export function createResolver(settings: { servers?: string[]; timeoutMs?: number }): Resolver {
  return new Resolver({ servers: settings.servers, timeoutMs: settings.timeoutMs });
}

/** RFC 7505 section 3: a null MX is a single record of preference 0 with the root as exchange. */
function isNullMx(records: { exchange: string; priority: number }[]): boolean {
  return records.length === 1 && normalizeHost(records[0]!.exchange) === '';
}

function normalizeHost(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}

function orderByPreference<T extends { priority: number }>(records: T[]): T[] {
  const shuffled = records
    .map((record) => ({ record, tiebreak: Math.random() }))
    .sort((a, b) => a.record.priority - b.record.priority || a.tiebreak - b.tiebreak);
  return shuffled.map((entry) => entry.record);
}

/** Maps the c-ares error codes Node reports to the codes delivery decisions use. */
export function toDnsError(error: unknown, hostname: string, rrtype: string): DnsError {
  if (error instanceof DnsError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  switch (code) {
    case dnsPromises.NOTFOUND:
      return new DnsError('NOTFOUND', hostname, rrtype);
    case dnsPromises.NODATA:
      return new DnsError('NODATA', hostname, rrtype);
    case dnsPromises.SERVFAIL:
    case dnsPromises.REFUSED:
      return new DnsError('SERVFAIL', hostname, rrtype, String(code));
    case dnsPromises.TIMEOUT:
      return new DnsError('TIMEOUT', hostname, rrtype);
    default:
      return new DnsError(
        'FAILED',
        hostname,
        rrtype,
        typeof code === 'string' ? code : String(error),
      );
  }
}
