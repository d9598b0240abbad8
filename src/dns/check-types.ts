/**
 * The vocabulary of the DNS setup checker: what Herald expects a domain to publish, and the
 * findings a check returns. Findings are values with a stable `code`, so the CLI, the API and
 * the admin pages can each present them, and tests can assert on them.
 */

/** A record the client must publish, in the shape `domainRecords` produces. */
export interface ExpectedRecord {
  /** Purpose of the record, in a few words. */
  purpose: string;
  /** Owner name without a trailing dot. */
  name: string;
  type: 'MX' | 'TXT' | 'CNAME';
  /** The record data as a resolver returns it: TXT strings joined, `PREF HOST` for MX. */
  value: string;
}

export interface CheckTarget {
  /** The hosted domain, lower case. */
  domain: string;
  /** Herald's host name: the MX target and the HELO name. */
  hostname: string;
  records: ExpectedRecord[];
  /**
   * Addresses Herald sends from, which SPF must authorise. When empty the checker uses the
   * addresses of `hostname`.
   */
  sendingAddresses?: string[];
}

export type Severity = 'error' | 'warning' | 'info';

export type FindingCode =
  | 'lookup-failed'
  | 'missing'
  | 'doubled-name'
  | 'value-differs'
  | 'key-mismatch'
  | 'quotes'
  | 'spaces'
  | 'split-records'
  | 'split-wrong-place'
  | 'truncated'
  | 'malformed'
  | 'weak-key'
  | 'revoked'
  | 'testing'
  | 'several-records'
  | 'cname-differs'
  | 'spf-not-covering'
  | 'spf-too-many-lookups'
  | 'spf-ptr'
  | 'dmarc-monitor-only'
  | 'dmarc-inherited'
  | 'null-mx'
  | 'no-address';

export interface Finding {
  code: FindingCode;
  severity: Severity;
  /** The DNS name the finding is about. */
  name: string;
  /** Description of the problem, in one or two sentences. */
  message: string;
  /** Change that makes the finding go away. */
  fix?: string;
}

export type RecordKind = 'dkim' | 'mx' | 'spf' | 'dmarc' | 'cname' | 'txt';

/** The result of checking one expected record. */
export interface RecordCheck {
  kind: RecordKind;
  purpose: string;
  name: string;
  type: ExpectedRecord['type'];
  expected: string;
  /** Records DNS returned at the name, one string per record (TXT strings shown quoted). */
  found: string[];
  /** `ok` when there is no finding worse than info; `unknown` when a lookup failed. */
  status: 'ok' | 'warning' | 'error' | 'unknown';
  findings: Finding[];
}

export interface CheckReport {
  domain: string;
  checkedAt: Date;
  /** True when no record has an error finding or a failed lookup. */
  ok: boolean;
  records: RecordCheck[];
}

/** Derives a record's status from its findings: the worst severity wins. */
export function statusOf(findings: Finding[]): RecordCheck['status'] {
  if (findings.some((finding) => finding.code === 'lookup-failed')) return 'unknown';
  if (findings.some((finding) => finding.severity === 'error')) return 'error';
  if (findings.some((finding) => finding.severity === 'warning')) return 'warning';
  return 'ok';
}
