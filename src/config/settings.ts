/**
 * Every setting Herald reads: its path in the configuration file, its kind, its default and
 * what it does. The loader, the environment overrides and the documentation table in
 * `docs/configuration.md` all come from this one table, and a test checks that the
 * documentation lists every row.
 */
import { hostname as systemHostname } from 'node:os';
import { join } from 'node:path';

import type { DomainRule } from '../distribution/throttle.js';

export interface Listen {
  host: string;
  port: number;
}

/** The loaded configuration: every field is set, durations are milliseconds, sizes bytes. */
export interface HeraldConfig {
  hostname: string;
  dataDir: string;
  store: { url: string };
  smtp: { mx: Listen; submission: Listen };
  http: Listen;
  limits: {
    maxMessageSize: number;
    maxRecipients: number;
    maxHeaderSize: number;
    maxLineLength: number;
    maxConnectionsPerClient: number;
    commandsPerMinute: number;
    idleTimeout: number;
    maxConnections: number;
    maxDataInFlight: number;
    dataTimeout: number;
    authFailuresPerWindow: number;
    authFailureWindow: number;
    srsNullSendersPerHour: number;
  };
  tls: { cert: string | null; key: string | null };
  dns: { servers: string[]; timeout: number };
  delivery: {
    port: number;
    concurrency: number;
    perDomainConcurrency: number;
    perDomainRatePerMinute: number;
    requireTls: string[];
    retrySchedule: { initialDelay: number; factor: number; maxDelay: number };
    maxQueueLifetime: number;
    connectTimeout: number;
    leaseTime: number;
    retainFinished: number;
  };
  srs: {
    domain: string;
    secretsFile: string;
    hashLength: number;
    maxAgeDays: number;
    maxTokens: number;
  };
  api: { tokens: string[] };
  distribution: {
    publicUrl: string;
    batchSize: number;
    batchLease: number;
    schedulerInterval: number;
    softBounceThreshold: number;
    complaintLocalPart: string;
    bounceLocalPart: string;
    unsubscribeLocalPart: string;
    domainRules: DomainRule[];
  };
  log: { level: LogLevel };
  postmaster: string[];
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export type SettingKind =
  | 'string'
  | 'hostname'
  | 'domain-list'
  | 'path'
  | 'optional-path'
  | 'port'
  | 'count'
  | 'number'
  | 'duration'
  | 'size'
  | 'list'
  | 'host-port-list'
  | 'log-level'
  | 'url'
  | 'local-part'
  | 'domain-rules';

export interface Setting {
  /** Dotted path in the file, such as `smtp.mx.port`. */
  path: string;
  kind: SettingKind;
  /** Default in file form, or a function of the settings already resolved above it. */
  default: unknown;
  /** Text of the default for the documentation when it is computed. */
  defaultText?: string;
  /** Smallest accepted value for numeric kinds. */
  min?: number;
  description: string;
  /** Marks values that must never be printed (API tokens). */
  secret?: boolean;
}

type Derived = (config: HeraldConfig) => unknown;

const derive = (compute: Derived): Derived => compute;

/**
 * The settings, in the order they are resolved: a computed default may use any setting above
 * it (`store.url` uses `dataDir`).
 */
export const SETTINGS: readonly Setting[] = [
  {
    path: 'hostname',
    kind: 'hostname',
    default: derive(() => systemHostname()),
    defaultText: 'the system host name',
    description: 'Name used in EHLO, in Received headers, and as the MAILER-DAEMON domain.',
  },
  {
    path: 'dataDir',
    kind: 'path',
    default: 'herald-data',
    description:
      'Directory for the SQLite database, DKIM keys, the self-signed certificate and SRS ' +
      'secrets. A relative path is taken from the working directory.',
  },
  {
    path: 'store.url',
    kind: 'string',
    default: derive((c) => `sqlite:${join(c.dataDir, 'herald.sqlite')}`),
    defaultText: '`sqlite:<dataDir>/herald.sqlite`',
    // A PostgreSQL URL may carry a password.
    secret: true,
    description:
      'Store location: `sqlite:PATH`, or `postgres://USER:PASSWORD@HOST:PORT/DATABASE` for ' +
      'several nodes that share one database.',
  },
  {
    path: 'smtp.mx.host',
    kind: 'string',
    default: '0.0.0.0',
    description: 'Address the MX listener binds.',
  },
  { path: 'smtp.mx.port', kind: 'port', default: 25, description: 'Port of the MX listener.' },
  {
    path: 'smtp.submission.host',
    kind: 'string',
    default: '0.0.0.0',
    description: 'Address the submission listener (STARTTLS, AUTH required) binds.',
  },
  {
    path: 'smtp.submission.port',
    kind: 'port',
    default: 587,
    description: 'Port of the submission listener.',
  },
  {
    path: 'http.host',
    kind: 'string',
    default: '127.0.0.1',
    description: 'Address of the REST API and `/metrics`.',
  },
  { path: 'http.port', kind: 'port', default: 8080, description: 'Port of the HTTP listener.' },
  {
    path: 'limits.maxMessageSize',
    kind: 'size',
    default: 25 * 1024 * 1024,
    min: 1,
    description: 'Largest message accepted (advertised with SIZE; larger gets 552).',
  },
  {
    path: 'limits.maxRecipients',
    kind: 'count',
    default: 100,
    min: 1,
    description: 'Recipients per message; the next RCPT gets 452 (RFC 5321 section 4.5.3.1.8).',
  },
  {
    path: 'limits.maxHeaderSize',
    kind: 'size',
    default: 64 * 1024,
    min: 1,
    description: 'Largest header section of a message.',
  },
  {
    path: 'limits.maxLineLength',
    kind: 'count',
    default: 1000,
    min: 80,
    description: 'Maximum line length, CRLF included (RFC 5321 section 4.5.3.1.6 sets 1000).',
  },
  {
    path: 'limits.maxConnectionsPerClient',
    kind: 'count',
    default: 50,
    min: 1,
    description: 'Simultaneous SMTP connections from one client address.',
  },
  {
    path: 'limits.commandsPerMinute',
    kind: 'count',
    default: 1200,
    min: 1,
    description: 'SMTP commands per minute from one client address.',
  },
  {
    path: 'limits.idleTimeout',
    kind: 'duration',
    default: '5m',
    min: 1000,
    description: 'Idle time after which an SMTP session is closed (RFC 5321 section 4.5.3.2.7).',
  },
  {
    path: 'limits.maxConnections',
    kind: 'count',
    default: 500,
    min: 1,
    description: 'Simultaneous SMTP connections to one listener, over all clients; more get 421.',
  },
  {
    path: 'limits.maxDataInFlight',
    kind: 'size',
    default: 512 * 1024 * 1024,
    min: 1024,
    description:
      'Bytes of unfinished DATA held in memory over all SMTP sessions; past it DATA gets 452.',
  },
  {
    path: 'limits.dataTimeout',
    kind: 'duration',
    default: '10m',
    min: 1000,
    description: 'Time the whole DATA phase of one message may take before 421 and close.',
  },
  {
    path: 'limits.authFailuresPerWindow',
    kind: 'count',
    default: 10,
    min: 1,
    description:
      'Failed AUTH attempts allowed per client address and per user name in ' +
      '`limits.authFailureWindow`; then AUTH gets 454.',
  },
  {
    path: 'limits.authFailureWindow',
    kind: 'duration',
    default: '15m',
    min: 1000,
    description: 'Window over which failed AUTH attempts are counted.',
  },
  {
    path: 'limits.srsNullSendersPerHour',
    kind: 'count',
    default: 10,
    min: 1,
    description: 'Messages per hour with the null sender accepted for one SRS address.',
  },
  {
    path: 'tls.cert',
    kind: 'optional-path',
    default: null,
    defaultText: 'none: a self-signed certificate is generated in `<dataDir>/tls/`',
    description: 'PEM certificate chain for STARTTLS.',
  },
  {
    path: 'tls.key',
    kind: 'optional-path',
    default: null,
    defaultText: 'none',
    description: 'PEM private key of `tls.cert`.',
  },
  {
    path: 'dns.servers',
    kind: 'host-port-list',
    default: [],
    defaultText: 'empty: the system resolvers',
    description: 'DNS servers as `host:port` (or `host`, port 53); IPv6 as `[addr]:port`.',
  },
  {
    path: 'dns.timeout',
    kind: 'duration',
    default: '5s',
    min: 1,
    description: 'Time a DNS query may take before it counts as a temporary failure.',
  },
  {
    path: 'delivery.port',
    kind: 'port',
    default: 25,
    min: 1,
    description: 'Remote port for MX delivery (tests point it at a sink).',
  },
  {
    path: 'delivery.concurrency',
    kind: 'count',
    default: 20,
    min: 1,
    description: 'Deliveries in flight at once, over all destinations.',
  },
  {
    path: 'delivery.perDomainConcurrency',
    kind: 'count',
    default: 5,
    min: 1,
    description: 'Deliveries in flight at once to one recipient domain.',
  },
  {
    path: 'delivery.perDomainRatePerMinute',
    kind: 'count',
    default: 0,
    description: 'Messages per minute to one recipient domain; 0 means no limit.',
  },
  {
    path: 'delivery.requireTls',
    kind: 'domain-list',
    default: [],
    description:
      'Recipient domains whose delivery must use STARTTLS with a valid certificate; ' +
      'other domains use TLS when offered.',
  },
  {
    path: 'delivery.retrySchedule.initialDelay',
    kind: 'duration',
    default: '5m',
    min: 1000,
    description: 'Wait after the first failed attempt.',
  },
  {
    path: 'delivery.retrySchedule.factor',
    kind: 'number',
    default: 2,
    min: 1,
    description: 'Each later wait is the previous one times this factor.',
  },
  {
    path: 'delivery.retrySchedule.maxDelay',
    kind: 'duration',
    default: '4h',
    min: 1000,
    description: 'Maximum wait between two attempts.',
  },
  {
    path: 'delivery.maxQueueLifetime',
    kind: 'duration',
    default: '5d',
    min: 1000,
    description: 'Time after which an undelivered message expires and bounces.',
  },
  {
    path: 'delivery.connectTimeout',
    kind: 'duration',
    default: '30s',
    min: 1,
    description: 'Time a TCP connection to an MX may take.',
  },
  {
    path: 'delivery.leaseTime',
    kind: 'duration',
    default: '10m',
    min: 1000,
    description: 'How long a worker holds claimed entries before another node may take them.',
  },
  {
    path: 'delivery.retainFinished',
    kind: 'duration',
    default: '7d',
    min: 1000,
    description:
      'How long a delivered or bounced message keeps its body in the store before it is purged.',
  },
  {
    path: 'srs.domain',
    kind: 'hostname',
    default: derive((c) => `srs.${c.hostname}`),
    defaultText: '`srs.<hostname>`',
    description: 'Domain of rewritten envelope senders; its MX must point at Herald.',
  },
  {
    path: 'srs.secretsFile',
    kind: 'path',
    default: derive((c) => join(c.dataDir, 'srs-secrets')),
    defaultText: '`<dataDir>/srs-secrets`',
    description:
      'File of SRS secrets, one per line, newest first; older lines still verify bounces.',
  },
  {
    path: 'srs.hashLength',
    kind: 'count',
    default: 4,
    min: 1,
    description: 'Characters of the SRS hash (base64 of HMAC-SHA1).',
  },
  {
    path: 'srs.maxAgeDays',
    kind: 'count',
    default: 21,
    min: 1,
    description: 'Days an SRS address stays valid for bounces.',
  },
  {
    path: 'srs.maxTokens',
    kind: 'count',
    default: 100_000,
    min: 1,
    description: 'Rows kept in the token table for senders whose SRS address exceeds 64 octets.',
  },
  {
    path: 'api.tokens',
    kind: 'list',
    default: [],
    secret: true,
    defaultText: 'empty: the API rejects every request',
    description: 'Bearer tokens accepted by the REST API.',
  },
  {
    path: 'distribution.publicUrl',
    kind: 'url',
    default: derive((c) => `http://${c.http.host}:${c.http.port}`),
    defaultText: '`http://<http.host>:<http.port>`',
    description:
      'Base URL of the HTTP listener as subscribers reach it (an HTTPS reverse proxy in ' +
      'production), used in the unsubscribe links of campaign messages. It may have a path ' +
      'but no query, fragment or user info, because `/u/TOKEN` is appended to it.',
  },
  {
    path: 'distribution.batchSize',
    kind: 'count',
    default: 500,
    min: 1,
    description: 'Subscribers a campaign sender claims, renders and signs at a time.',
  },
  {
    path: 'distribution.batchLease',
    kind: 'duration',
    default: '1m',
    min: 1000,
    description:
      'How long a claimed campaign batch stays with its sender without renewal; the batches ' +
      'of a node that died are taken over by another node after this time.',
  },
  {
    path: 'distribution.schedulerInterval',
    kind: 'duration',
    default: '5s',
    min: 100,
    description:
      'How often each node looks for campaigns whose time has come, for campaigns another ' +
      'node is sending (to share their batches), and for batches left by a node that died.',
  },
  {
    path: 'distribution.softBounceThreshold',
    kind: 'count',
    default: 3,
    min: 1,
    description: 'Soft bounces after which a subscriber is marked bounced and suppressed.',
  },
  {
    path: 'distribution.complaintLocalPart',
    kind: 'local-part',
    default: 'fbl',
    description:
      'Local part that receives ARF complaint reports at each sending domain. The three ' +
      'distribution local parts must differ ignoring case.',
  },
  {
    path: 'distribution.bounceLocalPart',
    kind: 'local-part',
    default: 'bounces',
    description:
      'Local part of the VERP return path (`bounces+TOKEN@domain`) of campaign messages.',
  },
  {
    path: 'distribution.unsubscribeLocalPart',
    kind: 'local-part',
    default: 'unsubscribe',
    description:
      'Local part of the `List-Unsubscribe` mailto address (`unsubscribe+TOKEN@domain`).',
  },
  {
    path: 'distribution.domainRules',
    kind: 'domain-rules',
    default: [],
    defaultText: 'empty: no per-destination limit',
    description:
      'Per-destination campaign limits, each `{domain, maxPerMinute, startPerMinute, ' +
      'rampMinutes}`. `domain` may be `*.suffix` or `*`, and each pattern may appear only ' +
      'once, ignoring case. The rate starts at `startPerMinute` (default `maxPerMinute`, and ' +
      'never above it) and rises linearly to `maxPerMinute` over `rampMinutes`. A ' +
      '`maxPerMinute` of 0 means no limit. In the environment, a JSON array. Errors number ' +
      'the rules from 1.',
  },
  {
    path: 'postmaster',
    kind: 'list',
    default: [],
    defaultText: 'empty: mail for `postmaster@` is rejected with 550',
    description:
      'Addresses that receive mail for `postmaster@` each hosted domain and the hostname ' +
      '(RFC 5321 section 4.5.1 requires it to be accepted).',
  },
  {
    path: 'log.level',
    kind: 'log-level',
    default: 'info',
    description: 'Lowest pino level written: trace, debug, info, warn, error, fatal or silent.',
  },
];

/** Return the environment variable that overrides a setting: `smtp.mx.port` is `HERALD_SMTP_MX_PORT`. */
export function environmentName(path: string): string {
  const words = path
    .split('.')
    .map((segment) => segment.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase());
  return `HERALD_${words.join('_')}`;
}
