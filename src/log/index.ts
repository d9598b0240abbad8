/**
 * Herald's logs: pino JSON lines on stdout. Secrets are kept out in three layers:
 * - `redact` paths replace fields named like secrets (passwords, tokens, keys, AUTH data) at
 *   the top level and two levels down;
 * - every string value and the message text are scrubbed of SMTP AUTH arguments, bearer
 *   tokens, PEM private keys and passwords in URLs;
 * - errors go through a serializer that scrubs their message and stack the same way.
 *
 * Lines about one message come from `messageLogger`, which binds the queue id, prefixes the
 * text with it, and always writes the fixed fields from, to, relay, delay, dsn and status, in
 * that order, as Postfix's logs do.
 */
import { format } from 'node:util';

import {
  pino,
  stdSerializers,
  type DestinationStream,
  type Logger,
  type LoggerOptions,
} from 'pino';

export type { Logger } from 'pino';

/** Field names whose values never reach a log line, wherever an object carries them. */
const SECRET_FIELDS = [
  'password',
  'pass',
  'passwd',
  'passwordHash',
  'secret',
  'secrets',
  'token',
  'tokens',
  'accessToken',
  'apiToken',
  'authorization',
  'cookie',
  'privateKey',
  'key',
  'authData',
];

export const REDACT_PATHS: readonly string[] = [
  ...SECRET_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]),
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
];

export const REDACTED = '[redacted]';

/** Cheap first test, so that the common line pays for one regular expression only. */
const SECRET_HINT = /auth|bearer|private key|:\/\/[^/\s]*:[^@\s]*@|password|secret/i;

const SCRUBBERS: readonly [RegExp, string][] = [
  // SMTP AUTH with an initial response (RFC 4954 section 4): `AUTH PLAIN dXNlcgB1c2VyAHB3`.
  [
    /\b(AUTH\s+(?:PLAIN|LOGIN|CRAM-MD5|XOAUTH2|OAUTHBEARER|SCRAM-[A-Z0-9-]+))\s+\S+/gi,
    `$1 ${REDACTED}`,
  ],
  [/\b(Bearer)\s+[A-Za-z0-9._~+/=-]+/gi, `$1 ${REDACTED}`],
  [/-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?(-----END \1PRIVATE KEY-----|$)/g, REDACTED],
  [/(\/\/[^/\s:@]*):[^@\s/]*@/g, `$1:${REDACTED}@`],
  [/\b(password|passwd|secret|token)(\s*[=:]\s*)("[^"]*"|\S+)/gi, `$1$2${REDACTED}`],
];

/** Remove AUTH arguments, bearer tokens, private keys and URL passwords from a text. */
export function scrubSecrets(text: string): string {
  if (!SECRET_HINT.test(text)) return text;
  let result = text;
  for (const [pattern, replacement] of SCRUBBERS) result = result.replace(pattern, replacement);
  return result;
}

function scrubValues(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrubSecrets(value);
  if (depth === 0 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => scrubValues(item, depth - 1));
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  const copy: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) copy[key] = scrubValues(inner, depth - 1);
  return copy;
}

function errorSerializer(error: Error) {
  const serialized = stdSerializers.err(error);
  serialized.message = scrubSecrets(serialized.message);
  if (typeof serialized.stack === 'string') serialized.stack = scrubSecrets(serialized.stack);
  return serialized;
}

export interface LoggerSettings {
  /** pino level name; `silent` writes nothing. */
  level?: string;
  /** Stream that receives the lines, stdout when omitted (tests pass their own). */
  destination?: DestinationStream;
  /** Fields bound to every line, such as the node name. */
  base?: Record<string, unknown>;
}

/** Create the process logger with the redaction and serializers described above. */
export function createLogger(settings: LoggerSettings = {}): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? 'info',
    base: settings.base ?? { pid: process.pid },
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
    serializers: { err: errorSerializer, error: errorSerializer },
    formatters: {
      log: (object) => scrubValues(object, 3) as Record<string, unknown>,
    },
    hooks: {
      logMethod(args, method) {
        // Message text and printf arguments (`log.info('C: %s', line)`) are scrubbed too.
        const scrubbed = args.map((arg) => (typeof arg === 'string' ? scrubSecrets(arg) : arg));
        method.apply(this, scrubbed as Parameters<typeof method>);
      },
    },
  };
  return settings.destination === undefined ? pino(options) : pino(options, settings.destination);
}

/** The fixed fields of a line about a message; a field not known yet is written as null. */
export interface MessageLogFields {
  /** Envelope sender, `''` for the null sender. */
  from?: string | null;
  /** Recipient of the delivery. */
  to?: string | null;
  /** MX host and address that answered, as `mx.example.net[192.0.2.1]:25`. */
  relay?: string | null;
  /** Seconds since the message arrived (use `delaySince`). */
  delay?: number | null;
  /** Enhanced status code (RFC 3463), such as `2.0.0` or `5.1.1`. */
  dsn?: string | null;
  /** `queued`, `sent`, `deferred`, `bounced`, `expired`, `deleted` and so on. */
  status?: string | null;
  /** More fields after the fixed ones: `reply`, `err`, `attempt`, ... */
  [field: string]: unknown;
}

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export interface MessageLogger {
  readonly queueId: string;
  /** The pino child logger, bound to the queue id. */
  readonly logger: Logger;
  trace(fields: MessageLogFields, text: string): void;
  debug(fields: MessageLogFields, text: string): void;
  info(fields: MessageLogFields, text: string): void;
  warn(fields: MessageLogFields, text: string): void;
  error(fields: MessageLogFields, text: string): void;
  fatal(fields: MessageLogFields, text: string): void;
  /** A logger for the same message whose lines default to these fields (a recipient, say). */
  with(fields: MessageLogFields): MessageLogger;
}

const FIXED_FIELDS = ['from', 'to', 'relay', 'delay', 'dsn', 'status'] as const;

/**
 * Create a logger for one message: every line carries `queueId` as its first bound field, its text
 * starts with the queue id, and the fixed fields follow in order.
 */
export function messageLogger(
  parent: Logger,
  queueId: string,
  defaults: MessageLogFields = {},
): MessageLogger {
  const logger = parent.child({ queueId }, { msgPrefix: `${queueId}: ` });
  return boundMessageLogger(logger, queueId, defaults);
}

function boundMessageLogger(
  logger: Logger,
  queueId: string,
  defaults: MessageLogFields,
): MessageLogger {
  const write = (level: Level) => (fields: MessageLogFields, text: string) => {
    if (!logger.isLevelEnabled(level)) return;
    const merged = { ...defaults, ...fields };
    const line: Record<string, unknown> = {};
    for (const name of FIXED_FIELDS) line[name] = merged[name] ?? null;
    for (const [name, value] of Object.entries(merged)) {
      if (!(FIXED_FIELDS as readonly string[]).includes(name)) line[name] = value;
    }
    logger[level](line, text);
  };
  return {
    queueId,
    logger,
    trace: write('trace'),
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    fatal: write('fatal'),
    with: (fields) => boundMessageLogger(logger, queueId, { ...defaults, ...fields }),
  };
}

/** Seconds from `since` to `now`, rounded to hundredths, for the `delay` field. */
export function delaySince(since: Date, now: Date = new Date()): number {
  return Math.round((now.getTime() - since.getTime()) / 10) / 100;
}

/** The logger shape that smtp-server and nodemailer accept for their `logger` option. */
export interface LibraryLogger {
  trace(meta: object, ...text: unknown[]): void;
  debug(meta: object, ...text: unknown[]): void;
  info(meta: object, ...text: unknown[]): void;
  warn(meta: object, ...text: unknown[]): void;
  error(meta: object, ...text: unknown[]): void;
  fatal(meta: object, ...text: unknown[]): void;
}

/**
 * Wrap a logger for smtp-server and nodemailer. They call `debug(meta, 'C:', line)` as bunyan
 * allows, and pino drops arguments that no `%s` placeholder consumes, so the protocol trace
 * would lose its text. The adapter joins the arguments with `util.format` first, and the
 * joined text then goes through the same scrubbing as every other line.
 */
export function libraryLogger(logger: Logger): LibraryLogger {
  const write =
    (level: Level) =>
    (meta: object, ...text: unknown[]) =>
      logger[level](meta, format(...text));
  return {
    trace: write('trace'),
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    fatal: write('fatal'),
  };
}
