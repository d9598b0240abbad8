/**
 * The one place that turns the outcome of a delivery step into a verdict: deliver, try the next
 * MX host, defer for a later retry, or bounce. The queue only carries the verdict out.
 *
 * The rules follow RFC 5321:
 * - A 2xx reply delivers.
 * - A network failure (no reply at all), a 4xx reply and a 421 at any stage are transient: the
 *   next MX host gets the recipients, and after the last host the entry is deferred.
 * - A 5xx reply to MAIL, RCPT, DATA or the end of data is permanent and bounces at once, even
 *   when other MX hosts are left, because every MX of a domain speaks for the same mailboxes.
 * - A 4xx or 5xx greeting (RFC 5321 section 3.1: 554 means "no service here") only rules out
 *   that host, so it is treated as transient. So is a refused STARTTLS: it says nothing about
 *   the message, only that this host cannot meet the TLS policy.
 * - Two 5xx replies are transient by their RFC: 503 (bad sequence of commands, a session
 *   problem rather than a judgement on the message) and 552 to RCPT, which RFC 5321 section
 *   4.5.3.1.10 says clients should treat as 452 (too many recipients).
 *
 * The class of the reply code wins over a disagreeing enhanced status code, because the reply
 * code is what RFC 5321 defines the client's action by, so `550 4.2.0` bounces with `5.2.0`.
 */
import type { DnsError } from '../dns/index.js';

/** The step of an SMTP transaction a reply or failure belongs to. */
export type DeliveryStage =
  'connect' | 'greeting' | 'ehlo' | 'starttls' | 'mail' | 'rcpt' | 'data' | 'end-of-data';

export interface StepOutcome {
  stage: DeliveryStage;
  /** SMTP reply code; undefined when no reply came (refused connection, timeout, lost link). */
  code?: number;
  /** Enhanced status code (RFC 3463) from the reply, or the client's own for a local failure. */
  enhanced?: string;
  /** Whether the host that produced this outcome is the last MX host left to try. */
  lastMx: boolean;
}

export type VerdictAction = 'deliver' | 'next-mx' | 'defer' | 'bounce';

export interface Verdict {
  action: VerdictAction;
  /** Enhanced status code for the queue event and the DSN, class matching the action. */
  dsn: string;
}

const ENHANCED_CODE = /^([245])\.(\d{1,3})\.(\d{1,3})$/;
const REPLY_WITH_ENHANCED = /^(\d{3})[ -]([245]\.\d{1,3}\.\d{1,3})(?=\s|$)/;

/** Splits a reply line such as `550 5.1.1 No such user` into its code and enhanced code. */
export function parseReply(reply: string): { code?: number; enhanced?: string } {
  const withEnhanced = REPLY_WITH_ENHANCED.exec(reply);
  if (withEnhanced) return { code: Number(withEnhanced[1]), enhanced: withEnhanced[2] };
  const code = /^(\d{3})(?=[ -]|$)/.exec(reply);
  return code ? { code: Number(code[1]) } : {};
}

/** Decides what a delivery step's outcome means for the recipients it concerns. */
export function decide(outcome: StepOutcome): Verdict {
  const { stage, code, lastMx } = outcome;
  const transient = (): Verdict => ({
    action: lastMx ? 'defer' : 'next-mx',
    dsn: withClass(outcome.enhanced ?? defaultDetail(stage, code), '4'),
  });

  if (code === undefined) return transient();
  if (code >= 200 && code < 300) {
    return { action: 'deliver', dsn: withClass(outcome.enhanced ?? '2.0.0', '2') };
  }
  // A 3xx reply where none belongs, or a code outside 2xx-5xx: the peer broke the protocol.
  if (code < 400 || code >= 600) return { ...transient(), dsn: '4.5.0' };
  if (code === 421 || stage === 'greeting' || stage === 'connect' || stage === 'starttls') {
    return transient();
  }
  if (code < 500) return transient();

  if (code === 503) return transient();
  if (code === 552 && stage === 'rcpt') return { ...transient(), dsn: '4.5.3' };
  return { action: 'bounce', dsn: withClass(outcome.enhanced ?? defaultDetail(stage, code), '5') };
}

/**
 * Decides a failed MX lookup of the recipient domain. A domain that does not exist or has a
 * null MX (RFC 7505 assigns `5.1.10`) bounces; a server failure or timeout defers.
 */
export function decideDnsFailure(error: DnsError): Verdict {
  switch (error.code) {
    case 'NULL_MX':
      return { action: 'bounce', dsn: '5.1.10' };
    case 'NOTFOUND':
      return { action: 'bounce', dsn: '5.1.2' };
    case 'NODATA':
      // The domain exists without MX or address records: RFC 3463 X.4.4, unable to route.
      return { action: 'bounce', dsn: '5.4.4' };
    default:
      // RFC 3463 section 3.5: X.4.3 is a directory (here DNS) server failure.
      return { action: 'defer', dsn: '4.4.3' };
  }
}

/**
 * Decides a failed address lookup of one MX host. The domain's other hosts may still resolve,
 * and a host name that does not resolve today is usually a configuration slip that gets fixed,
 * so even a permanent answer only moves on or defers (X.4.4, unable to route).
 */
export function decideHostLookupFailure(lastMx: boolean): Verdict {
  return { action: lastMx ? 'defer' : 'next-mx', dsn: '4.4.4' };
}

function withClass(enhanced: string, cls: '2' | '4' | '5'): string {
  const match = ENHANCED_CODE.exec(enhanced);
  if (!match) return `${cls}.0.0`;
  return `${cls}.${match[2]}.${match[3]}`;
}

/** The enhanced code to report when the reply carried none (RFC 3463 section 3). */
function defaultDetail(stage: DeliveryStage, code: number | undefined): string {
  if (code === undefined) {
    // X.4.1: no answer from host; X.4.2: bad connection; X.7.0 for a failed TLS negotiation.
    if (stage === 'connect') return '4.4.1';
    if (stage === 'starttls') return '4.7.0';
    return '4.4.2';
  }
  // X.1.0: other address status, the closest class for a recipient refused without detail.
  return stage === 'rcpt' ? '4.1.0' : '4.0.0';
}
