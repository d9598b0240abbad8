/**
 * Loading the configuration: defaults, then the file (YAML, or TOML when the name ends in
 * `.toml`), then `HERALD_...` environment variables, each layer overriding the one before.
 * Every value is checked against its setting's kind, and an unknown key in the file is an
 * error, because a misspelt setting would otherwise be silently ignored.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import { parse as parseToml } from 'smol-toml';
import { parse as parseYaml } from 'yaml';

import type { DomainRule } from '../distribution/throttle.js';
import { findDomainRuleProblem, isDomainName } from './domain-rules.js';
import { SETTINGS, environmentName, type HeraldConfig, type Setting } from './settings.js';
import { parseDuration, parseSize } from './units.js';

/** An invalid configuration file or value; the message names the setting and the fix. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** The environment variable naming the configuration file when no path is passed. */
export const CONFIG_PATH_VARIABLE = 'HERALD_CONFIG';

/**
 * Load the configuration from `path` (or `$HERALD_CONFIG`; no file when neither is set) and
 * the environment. Throws ConfigError for an unreadable file or an invalid value.
 */
export function loadConfig(
  path?: string,
  env: Record<string, string | undefined> = process.env,
): HeraldConfig {
  const file = path ?? env[CONFIG_PATH_VARIABLE];
  const fileValues = file === undefined || file === '' ? {} : readConfigFile(file);
  const source = file ?? 'defaults';
  const flat = flatten(fileValues, '', source);
  const config = {} as HeraldConfig;
  const origins = new Map<string, string>();

  for (const setting of SETTINGS) {
    const variable = environmentName(setting.path);
    const fromEnv = env[variable];
    let value: unknown;
    let origin: string;
    if (fromEnv !== undefined) {
      origin = `environment variable ${variable}`;
      value = fromEnvironment(setting, fromEnv, origin);
    } else if (flat.has(setting.path)) {
      value = flat.get(setting.path);
      origin = `${source}: ${setting.path}`;
    } else if (typeof setting.default === 'function') {
      value = (setting.default as (config: HeraldConfig) => unknown)(config);
      origin = `default of ${setting.path}`;
    } else {
      value = setting.default;
      origin = `default of ${setting.path}`;
    }
    setPath(config, setting.path, checkValue(setting, value, origin));
    origins.set(setting.path, origin);
  }
  checkLocalPartsDiffer(config, origins);
  return config;
}

/**
 * Reject two distribution local parts that are equal ignoring case. Inbound mail is matched
 * to them ignoring case, so one address would receive the mail meant for the other.
 */
function checkLocalPartsDiffer(config: HeraldConfig, origins: ReadonlyMap<string, string>): void {
  const { distribution } = config;
  const localParts: [string, string][] = [
    ['distribution.unsubscribeLocalPart', distribution.unsubscribeLocalPart],
    ['distribution.bounceLocalPart', distribution.bounceLocalPart],
    ['distribution.complaintLocalPart', distribution.complaintLocalPart],
  ];
  for (const [i, [path, value]] of localParts.entries()) {
    for (const [otherPath, otherValue] of localParts.slice(i + 1)) {
      if (value.toLowerCase() !== otherValue.toLowerCase()) continue;
      throw new ConfigError(
        `${path} and ${otherPath} must differ, but both are ${JSON.stringify(value)} ignoring ` +
          `case (from ${origins.get(path)} and from ${origins.get(otherPath)}). ` +
          'Give each a different local part.',
      );
    }
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`cannot read configuration file ${path}: ${reason}`);
  }
  let parsed: unknown;
  try {
    parsed = path.toLowerCase().endsWith('.toml') ? parseToml(text) : parseYaml(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`invalid configuration file ${path}: ${reason}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`configuration file ${path} must contain a mapping of settings`);
  }
  return parsed as Record<string, unknown>;
}

const KNOWN_PATHS = new Set(SETTINGS.map((s) => s.path));
const KNOWN_PREFIXES = new Set(
  SETTINGS.flatMap((s) => {
    const parts = s.path.split('.');
    return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('.'));
  }),
);

/** Turn the nested file mapping into dotted paths, rejecting keys that name no setting. */
function flatten(values: Record<string, unknown>, prefix: string, source: string) {
  const flat = new Map<string, unknown>();
  for (const [key, value] of Object.entries(values)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    if (KNOWN_PATHS.has(path)) {
      flat.set(path, value);
    } else if (KNOWN_PREFIXES.has(path) && isMapping(value)) {
      for (const [inner, innerValue] of flatten(value, path, source)) flat.set(inner, innerValue);
    } else if (KNOWN_PREFIXES.has(path)) {
      throw new ConfigError(`${source}: ${path} must be a mapping of settings`);
    } else {
      throw new ConfigError(
        `${source}: unknown setting ${path} (see docs/configuration.md for the list)`,
      );
    }
  }
  return flat;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Environment values are strings: lists are comma-separated, and an empty optional path means none. */
function fromEnvironment(setting: Setting, text: string, origin: string): unknown {
  if (
    setting.kind === 'list' ||
    setting.kind === 'host-port-list' ||
    setting.kind === 'domain-list'
  ) {
    return text
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  }
  if (setting.kind === 'optional-path' && text === '') return null;
  if (setting.kind === 'domain-rules') {
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new ConfigError(
        `${origin}: expected a JSON array such as [{"domain": "*", "maxPerMinute": 60}], ` +
          `got ${JSON.stringify(text)}, which is not valid JSON (${(error as Error).message})`,
      );
    }
  }
  return text;
}

function checkValue(setting: Setting, value: unknown, origin: string): unknown {
  const fail = (expected: string): never => {
    const printed = setting.secret === true ? '(hidden)' : JSON.stringify(value);
    throw new ConfigError(`${origin}: expected ${expected}, got ${printed}`);
  };
  const min = setting.min ?? 0;

  switch (setting.kind) {
    case 'string':
      if (typeof value !== 'string' || value === '') fail('a non-empty string');
      return value;
    case 'hostname':
      if (typeof value !== 'string' || !isDomainName(value)) {
        fail('a domain name such as mx.example.net');
      }
      return (value as string).toLowerCase();
    case 'domain-list':
      if (
        !Array.isArray(value) ||
        !value.every((item) => typeof item === 'string' && isDomainName(item))
      ) {
        fail('a list of domain names, such as ["example.com"]');
      }
      return (value as string[]).map((domain) => domain.toLowerCase());
    case 'path':
      if (typeof value !== 'string' || value === '') fail('a file or directory path');
      return resolve(value as string);
    case 'optional-path':
      if (value === null) return null;
      if (typeof value !== 'string' || value === '') fail('a file path');
      return resolve(value as string);
    case 'port': {
      const port = toNumber(value);
      if (!Number.isInteger(port) || port < min || port > 65535) {
        fail(`a port number from ${min} to 65535`);
      }
      return port;
    }
    case 'count': {
      const count = toNumber(value);
      if (!Number.isSafeInteger(count) || count < min) fail(`a whole number of at least ${min}`);
      return count;
    }
    case 'number': {
      const number = toNumber(value);
      if (!Number.isFinite(number) || number < min) fail(`a number of at least ${min}`);
      return number;
    }
    case 'duration': {
      const ms = parseDuration(typeof value === 'string' && /^\d+$/.test(value) ? +value : value);
      if (ms === undefined || ms < min) {
        fail(`a duration of at least ${min} ms, such as 30s, 5m, 4h or 5d`);
      }
      return ms;
    }
    case 'size': {
      const bytes = parseSize(value);
      if (bytes === undefined || bytes < min) fail('a size in bytes, such as 1048576 or 25MiB');
      return bytes;
    }
    case 'list':
      if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
        fail('a list of strings');
      }
      return [...(value as string[])];
    case 'host-port-list':
      if (!Array.isArray(value) || !value.every(isHostPort)) {
        fail('a list of host:port strings, such as ["127.0.0.1:5353"]');
      }
      return [...(value as string[])];
    case 'log-level':
      if (typeof value !== 'string' || !LOG_LEVELS.has(value)) fail([...LOG_LEVELS].join(', '));
      return value;
    case 'url': {
      if (typeof value !== 'string' || !isHttpUrl(value)) {
        fail('an http or https URL, such as https://lists.example.net');
      }
      // Herald appends paths such as /u/TOKEN to the URL, and a query or fragment would
      // swallow them. User info would show its credentials to every recipient of a link.
      const extras = findUrlExtras(value as string);
      if (extras.length > 0) {
        const printed = extras.includes('user info') ? '(hidden)' : JSON.stringify(value);
        throw new ConfigError(
          `${origin}: expected a base URL without a query, fragment or user info, ` +
            `got ${printed}, which has ${extras.join(' and ')}`,
        );
      }
      return value;
    }
    case 'local-part':
      // A dot-atom (RFC 5322 section 3.4.1) without `+`, which separates the token.
      if (
        typeof value !== 'string' ||
        !/^[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+)*$/.test(value)
      ) {
        fail('a local part of letters, digits and -_. without + or @, such as bounces');
      }
      return value;
    case 'domain-rules': {
      if (!Array.isArray(value)) {
        fail('a list of rules {domain, maxPerMinute, startPerMinute?, rampMinutes?}');
      }
      const problem = findDomainRuleProblem(value as unknown[]);
      if (problem !== undefined) throw new ConfigError(`${origin}: ${problem}`);
      return (value as DomainRule[]).map((rule) => ({ ...rule }));
    }
  }
}

/**
 * Return whether `value` is an absolute http or https URL with a host. Whitespace is rejected
 * because the URL parser would trim or encode it, while links are built from the text as written.
 */
function isHttpUrl(value: string): boolean {
  if (/\s/.test(value)) return false;
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/**
 * List the parts of a URL that a base URL must not have. The text is checked as written,
 * because the parser drops an empty query (`?`), an empty fragment (`#`) and empty user info.
 */
function findUrlExtras(value: string): string[] {
  const extras: string[] = [];
  if (value.includes('?')) extras.push('a query');
  if (value.includes('#')) extras.push('a fragment');
  // For http and https the WHATWG URL parser skips any slashes and backslashes after the
  // scheme, and the authority then runs to the next `/`, `\`, `?` or `#`. User info is the
  // part of the authority before an `@`.
  const authority = /^[a-z][a-z0-9+.-]*:[/\\]*([^/\\?#]*)/i.exec(value)?.[1] ?? '';
  const url = new URL(value);
  if (authority.includes('@') || url.username !== '' || url.password !== '') {
    extras.push('user info');
  }
  return extras;
}

function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value);
  return Number.NaN;
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`, with a port from 1 to 65535. */
function isHostPort(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+))(?::(\d{1,5}))?$/.exec(value);
  if (match === null) return /^[0-9a-fA-F:]+$/.test(value) && value.includes(':');
  const port = match[3] === undefined ? 53 : Number(match[3]);
  return port >= 1 && port <= 65535;
}

function setPath(target: object, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target as Record<string, unknown>;
  for (const part of parts.slice(0, -1)) {
    node[part] ??= {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}
