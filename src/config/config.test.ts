import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { settingsTable } from './docs.js';
import {
  ConfigError,
  SETTINGS,
  environmentName,
  loadConfig,
  parseDuration,
  parseSize,
} from './index.js';

const directory = mkdtempSync(join(tmpdir(), 'herald-config-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(directory, name);
  writeFileSync(path, text);
  return path;
}

describe('loadConfig', () => {
  it('defaults work without a file', () => {
    const config = loadConfig(undefined, {});
    expect(config.hostname).toBe(hostname());
    expect(config.dataDir).toBe(resolve('herald-data'));
    expect(config.store.url).toBe(`sqlite:${join(resolve('herald-data'), 'herald.sqlite')}`);
    expect(config.smtp.mx).toEqual({ host: '0.0.0.0', port: 25 });
    expect(config.smtp.submission.port).toBe(587);
    expect(config.limits.maxMessageSize).toBe(26_214_400);
    expect(config.limits.idleTimeout).toBe(300_000);
    expect(config.tls).toEqual({ cert: null, key: null });
    expect(config.dns.servers).toEqual([]);
    expect(config.delivery.retrySchedule).toEqual({
      initialDelay: 300_000,
      factor: 2,
      maxDelay: 14_400_000,
    });
    expect(config.delivery.maxQueueLifetime).toBe(5 * 86_400_000);
    expect(config.srs.domain).toBe(`srs.${hostname()}`);
    expect(config.api.tokens).toEqual([]);
  });

  it('every setting is set', () => {
    const config = loadConfig(undefined, {});
    for (const setting of SETTINGS) {
      const value = setting.path
        .split('.')
        .reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], config);
      expect(value, setting.path).not.toBeUndefined();
    }
  });

  it('reads YAML and derives dependent defaults', () => {
    const path = file(
      'herald.yaml',
      [
        'hostname: MX.example.net',
        `dataDir: ${join(directory, 'data')}`,
        'smtp:',
        '  mx: { host: 127.0.0.1, port: 2525 }',
        'limits:',
        '  maxMessageSize: 10MiB',
        '  idleTimeout: 30s',
        'dns:',
        '  servers: ["127.0.0.1:5353", "[::1]:5353"]',
        'delivery:',
        '  requireTls: [Example.COM]',
        '  retrySchedule: { initialDelay: 1m, factor: 1.5 }',
        'api:',
        '  tokens: [t1]',
      ].join('\n'),
    );
    const config = loadConfig(path, {});
    expect(config.hostname).toBe('mx.example.net');
    expect(config.smtp.mx).toEqual({ host: '127.0.0.1', port: 2525 });
    expect(config.smtp.submission).toEqual({ host: '0.0.0.0', port: 587 });
    expect(config.limits.maxMessageSize).toBe(10 * 1024 * 1024);
    expect(config.limits.idleTimeout).toBe(30_000);
    expect(config.dns.servers).toEqual(['127.0.0.1:5353', '[::1]:5353']);
    expect(config.delivery.requireTls).toEqual(['example.com']);
    expect(config.delivery.retrySchedule).toEqual({
      initialDelay: 60_000,
      factor: 1.5,
      maxDelay: 14_400_000,
    });
    expect(config.store.url).toBe(`sqlite:${join(directory, 'data', 'herald.sqlite')}`);
    expect(config.srs.domain).toBe('srs.mx.example.net');
    expect(config.srs.secretsFile).toBe(join(directory, 'data', 'srs-secrets'));
    expect(config.api.tokens).toEqual(['t1']);
  });

  it('reads TOML', () => {
    const path = file(
      'herald.toml',
      [
        'hostname = "mx.example.org"',
        '[smtp.submission]',
        'port = 2587',
        '[delivery]',
        'port = 2526',
        'maxQueueLifetime = "2h"',
        '[delivery.retrySchedule]',
        'maxDelay = "30m"',
      ].join('\n'),
    );
    const config = loadConfig(path, {});
    expect(config.hostname).toBe('mx.example.org');
    expect(config.smtp.submission.port).toBe(2587);
    expect(config.delivery.port).toBe(2526);
    expect(config.delivery.maxQueueLifetime).toBe(7_200_000);
    expect(config.delivery.retrySchedule.maxDelay).toBe(1_800_000);
  });

  it('environment overrides the file', () => {
    const path = file('env.yaml', 'smtp:\n  mx:\n    port: 2525\n');
    const config = loadConfig(path, {
      HERALD_SMTP_MX_PORT: '3525',
      HERALD_DNS_SERVERS: '127.0.0.1:5300, 127.0.0.2:5300',
      HERALD_DELIVERY_CONNECT_TIMEOUT: '2s',
      HERALD_LIMITS_MAX_RECIPIENTS: '7',
      HERALD_API_TOKENS: 'a,b',
      HERALD_TLS_CERT: '',
      HERALD_LOG_LEVEL: 'debug',
    });
    expect(config.smtp.mx.port).toBe(3525);
    expect(config.dns.servers).toEqual(['127.0.0.1:5300', '127.0.0.2:5300']);
    expect(config.delivery.connectTimeout).toBe(2000);
    expect(config.limits.maxRecipients).toBe(7);
    expect(config.api.tokens).toEqual(['a', 'b']);
    expect(config.tls.cert).toBeNull();
    expect(config.log.level).toBe('debug');
  });

  it('HERALD_CONFIG names the file', () => {
    const path = file('named.yaml', 'http: { port: 9090 }\n');
    expect(loadConfig(undefined, { HERALD_CONFIG: path }).http.port).toBe(9090);
  });

  it('rejects an unknown setting', () => {
    const path = file('typo.yaml', 'smtp:\n  mx:\n    prot: 25\n');
    expect(() => loadConfig(path, {})).toThrow(ConfigError);
    expect(() => loadConfig(path, {})).toThrow(/unknown setting smtp\.mx\.prot/);
  });

  it('rejects invalid values with the setting name', () => {
    expect(() => loadConfig(undefined, { HERALD_SMTP_MX_PORT: '70000' })).toThrow(
      /HERALD_SMTP_MX_PORT: expected a port number/,
    );
    expect(() => loadConfig(undefined, { HERALD_LIMITS_IDLE_TIMEOUT: 'soon' })).toThrow(
      /HERALD_LIMITS_IDLE_TIMEOUT: expected a duration/,
    );
    expect(() => loadConfig(undefined, { HERALD_DNS_SERVERS: '127.0.0.1:99999' })).toThrow(
      /host:port/,
    );
    expect(() => loadConfig(undefined, { HERALD_LOG_LEVEL: 'loud' })).toThrow(/info/);
    expect(() => loadConfig(undefined, { HERALD_HOSTNAME: 'smtp://mx.example.net' })).toThrow(
      /HERALD_HOSTNAME: expected a domain name/,
    );
    expect(() =>
      loadConfig(undefined, { HERALD_DELIVERY_REQUIRE_TLS: 'ok.example,bad_domain' }),
    ).toThrow(/expected a list of domain names/);
    const path = file('bad.yaml', 'limits:\n  maxRecipients: -1\n');
    expect(() => loadConfig(path, {})).toThrow(/limits\.maxRecipients: expected a whole number/);
    const scalar = file('scalar.yaml', 'smtp: 25\n');
    expect(() => loadConfig(scalar, {})).toThrow(/smtp must be a mapping/);
  });

  it('hides secret values in errors', () => {
    const path = file('secret.yaml', 'api:\n  tokens: s3cret-token\n');
    expect(() => loadConfig(path, {})).toThrow(/\(hidden\)/);
    expect(() => loadConfig(path, {})).not.toThrow(/s3cret/);
  });

  it('reports a missing or broken file', () => {
    expect(() => loadConfig(join(directory, 'missing.yaml'), {})).toThrow(/cannot read/);
    const path = file('broken.toml', 'hostname = \n');
    expect(() => loadConfig(path, {})).toThrow(/invalid configuration file/);
  });
});

describe('units', () => {
  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1.5h', 5_400_000],
    ['5d', 432_000_000],
    [1234, 1234],
  ])('duration %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ['1024', 1024],
    ['10MB', 10_000_000],
    ['10MiB', 10_485_760],
    ['64KiB', 65_536],
    [512, 512],
  ])('size %s', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it('invalid units are undefined', () => {
    expect(parseDuration('5 weeks')).toBeUndefined();
    expect(parseDuration(-1)).toBeUndefined();
    expect(parseSize('10 parsecs')).toBeUndefined();
  });
});

describe('distribution settings', () => {
  it('defaults the public URL to the HTTP listener and reads the rest', () => {
    const config = loadConfig(undefined, {
      HERALD_HTTP_HOST: '127.0.0.9',
      HERALD_HTTP_PORT: '8181',
    });
    expect(config.distribution).toEqual({
      publicUrl: 'http://127.0.0.9:8181',
      batchSize: 500,
      batchLease: 60_000,
      schedulerInterval: 5_000,
      softBounceThreshold: 3,
      complaintLocalPart: 'fbl',
      bounceLocalPart: 'bounces',
      unsubscribeLocalPart: 'unsubscribe',
      domainRules: [],
    });
  });

  it('takes domain rules from the file and as JSON from the environment', () => {
    const path = file(
      'rules.yaml',
      [
        'distribution:',
        '  publicUrl: https://lists.example.net/',
        '  batchLease: 30s',
        '  domainRules:',
        '    - { domain: "*.example", maxPerMinute: 600, rampMinutes: 30 }',
      ].join('\n'),
    );
    const fromFile = loadConfig(path, {});
    expect(fromFile.distribution.publicUrl).toBe('https://lists.example.net/');
    expect(fromFile.distribution.batchLease).toBe(30_000);
    expect(fromFile.distribution.domainRules).toEqual([
      { domain: '*.example', maxPerMinute: 600, rampMinutes: 30 },
    ]);
    const fromEnv = loadConfig(path, {
      HERALD_DISTRIBUTION_DOMAIN_RULES: '[{"domain": "*", "maxPerMinute": 60}]',
    });
    expect(fromEnv.distribution.domainRules).toEqual([{ domain: '*', maxPerMinute: 60 }]);
  });

  it('names the setting that is wrong', () => {
    const load = (env: Record<string, string>) => () => loadConfig(undefined, env);
    expect(load({ HERALD_DISTRIBUTION_DOMAIN_RULES: '{"domain": "x"}' })).toThrow(
      /HERALD_DISTRIBUTION_DOMAIN_RULES.*expected a list of/,
    );
    expect(load({ HERALD_DISTRIBUTION_PUBLIC_URL: 'ftp://x.example' })).toThrow(
      /HERALD_DISTRIBUTION_PUBLIC_URL.*http or https URL/,
    );
    expect(load({ HERALD_DISTRIBUTION_BOUNCE_LOCAL_PART: 'bounce+x' })).toThrow(
      /HERALD_DISTRIBUTION_BOUNCE_LOCAL_PART.*without \+/,
    );
    expect(load({ HERALD_DISTRIBUTION_BATCH_LEASE: '10' })).toThrow(/at least 1000 ms/);
  });
});

/** Returns the message of the ConfigError that `run` throws, failing when it throws nothing. */
function configErrorOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error('expected a ConfigError, but nothing was thrown');
}

describe('distribution.publicUrl', () => {
  const variable = 'HERALD_DISTRIBUTION_PUBLIC_URL';
  const load = (url: string) => () => loadConfig(undefined, { [variable]: url });

  it('accepts a base URL with a path', () => {
    expect(load('https://lists.example.net/base')().distribution.publicUrl).toBe(
      'https://lists.example.net/base',
    );
    expect(load('http://127.0.0.1:8080')().distribution.publicUrl).toBe('http://127.0.0.1:8080');
  });

  it('rejects a query and a fragment', () => {
    const message = configErrorOf(load('http://127.0.0.1:1/base?x=1#f'));
    expect(message).toBe(
      `environment variable ${variable}: expected a base URL without a query, fragment or ` +
        'user info, got "http://127.0.0.1:1/base?x=1#f", which has a query and a fragment',
    );
  });

  it.each([
    ['http://127.0.0.1:1/base?x=1', 'a query'],
    ['http://127.0.0.1:1/base?', 'a query'],
    ['http://127.0.0.1:1/base#f', 'a fragment'],
    ['http://127.0.0.1:1/#', 'a fragment'],
  ])('rejects %s', (url, part) => {
    const message = configErrorOf(load(url));
    expect(message).toContain(`environment variable ${variable}:`);
    expect(message).toContain(`which has ${part}`);
  });

  it.each([
    'http://user:pa55word@127.0.0.1:1/base',
    'http://user@127.0.0.1:1/',
    'http://@127.0.0.1:1/',
    'http:user:pa55word@127.0.0.1:1/',
  ])('rejects user info in %s and hides it', (url) => {
    const message = configErrorOf(load(url));
    expect(message).toContain(`environment variable ${variable}:`);
    expect(message).toContain('which has user info');
    expect(message).toContain('(hidden)');
    expect(message).not.toContain('pa55word');
    expect(message).not.toContain('user@');
  });

  it('rejects whitespace', () => {
    expect(configErrorOf(load(' https://lists.example.net'))).toContain(
      'expected an http or https URL',
    );
  });

  it('names the file setting', () => {
    const path = file('query.yaml', 'distribution:\n  publicUrl: https://lists.example.net/?a\n');
    expect(configErrorOf(() => loadConfig(path, {}))).toContain(
      `${path}: distribution.publicUrl: expected a base URL without a query`,
    );
  });
});

describe('distribution local parts', () => {
  it.each([
    ['UNSUBSCRIBE', 'BOUNCE', 'bounces', 'Bounces'],
    ['UNSUBSCRIBE', 'COMPLAINT', 'fbl', 'FBL'],
    ['BOUNCE', 'COMPLAINT', 'reports', 'reports'],
  ])('rejects %s equal to %s', (first, second, firstValue, secondValue) => {
    const message = configErrorOf(() =>
      loadConfig(undefined, {
        [`HERALD_DISTRIBUTION_${first}_LOCAL_PART`]: firstValue,
        [`HERALD_DISTRIBUTION_${second}_LOCAL_PART`]: secondValue,
      }),
    );
    const path = (name: string) => `distribution.${name.toLowerCase()}LocalPart`;
    expect(message).toContain(`${path(first)} and ${path(second)} must differ`);
    expect(message).toContain(`environment variable HERALD_DISTRIBUTION_${first}_LOCAL_PART`);
    expect(message).toContain(`environment variable HERALD_DISTRIBUTION_${second}_LOCAL_PART`);
  });

  it('names a default that collides', () => {
    const message = configErrorOf(() =>
      loadConfig(undefined, { HERALD_DISTRIBUTION_BOUNCE_LOCAL_PART: 'Unsubscribe' }),
    );
    expect(message).toBe(
      'distribution.unsubscribeLocalPart and distribution.bounceLocalPart must differ, but ' +
        'both are "unsubscribe" ignoring case (from default of ' +
        'distribution.unsubscribeLocalPart and from environment variable ' +
        'HERALD_DISTRIBUTION_BOUNCE_LOCAL_PART). Give each a different local part.',
    );
  });

  it('accepts three different local parts', () => {
    const config = loadConfig(undefined, {
      HERALD_DISTRIBUTION_UNSUBSCRIBE_LOCAL_PART: 'leave',
      HERALD_DISTRIBUTION_BOUNCE_LOCAL_PART: 'return',
      HERALD_DISTRIBUTION_COMPLAINT_LOCAL_PART: 'abuse-reports',
    });
    expect(config.distribution.unsubscribeLocalPart).toBe('leave');
    expect(config.distribution.bounceLocalPart).toBe('return');
    expect(config.distribution.complaintLocalPart).toBe('abuse-reports');
  });
});

describe('distribution.domainRules', () => {
  const variable = 'HERALD_DISTRIBUTION_DOMAIN_RULES';
  const rulesError = (rules: unknown) =>
    configErrorOf(() => loadConfig(undefined, { [variable]: JSON.stringify(rules) }));

  it('rejects a start above the maximum', () => {
    const rules = [
      { domain: 'a.example', maxPerMinute: 60 },
      { domain: 'b.example', maxPerMinute: 10, startPerMinute: 100, rampMinutes: 5 },
    ];
    expect(rulesError(rules)).toBe(
      `environment variable ${variable}: rule 2: startPerMinute 100 is above maxPerMinute 10`,
    );
  });

  it('rejects a start above a maximum of 0', () => {
    const rules = [{ domain: '*', maxPerMinute: 0, startPerMinute: 5 }];
    expect(rulesError(rules)).toBe(
      `environment variable ${variable}: rule 1: startPerMinute 5 is above maxPerMinute 0`,
    );
  });

  it('rejects a repeated domain pattern', () => {
    const rules = [
      { domain: '*.example', maxPerMinute: 60 },
      { domain: 'b.example', maxPerMinute: 60 },
      { domain: '*.EXAMPLE', maxPerMinute: 600 },
    ];
    expect(rulesError(rules)).toBe(
      `environment variable ${variable}: rule 3: domain "*.EXAMPLE" repeats rule 1 ` +
        '(domain patterns are compared ignoring case)',
    );
  });

  it.each([
    [[5], 'rule 1: expected a mapping such as'],
    [[{ maxPerMinute: 5 }], 'rule 1: domain is missing'],
    [[{ domain: 'bad_domain', maxPerMinute: 5 }], 'rule 1: domain "bad_domain" is not a domain'],
    [[{ domain: '*.', maxPerMinute: 5 }], 'rule 1: domain "*." is not a domain'],
    [[{ domain: 7, maxPerMinute: 5 }], 'rule 1: domain 7 is not a domain'],
    [[{ domain: 'x.example' }], 'rule 1: maxPerMinute is missing'],
    [
      [{ domain: 'x.example', maxPerMinute: -1 }],
      'rule 1: maxPerMinute -1 is not a number of at least 0',
    ],
    [
      [{ domain: 'x.example', maxPerMinute: '60' }],
      'rule 1: maxPerMinute "60" is not a number of at least 0',
    ],
    [
      [
        { domain: 'a.example', maxPerMinute: 60 },
        { domain: 'x.example', maxPerMinute: 60, startPerMinute: -5 },
      ],
      'rule 2: startPerMinute -5 is not a number of at least 0',
    ],
    [
      [{ domain: 'x.example', maxPerMinute: 60, rampMinutes: null }],
      'rule 1: rampMinutes null is not a number of at least 0',
    ],
    [
      [{ domain: 'x.example', maxPerHour: 5 }],
      'rule 1: unknown field maxPerHour (the fields are domain, maxPerMinute, ' +
        'startPerMinute, rampMinutes)',
    ],
  ])('rejects %j', (rules, problem) => {
    expect(rulesError(rules)).toContain(`environment variable ${variable}: ${problem}`);
  });

  it('names the file setting and the rule', () => {
    const path = file(
      'ramp.yaml',
      [
        'distribution:',
        '  domainRules:',
        '    - { domain: "a.example", maxPerMinute: 60 }',
        '    - { domain: "b.example", maxPerMinute: 60 }',
        '    - { domain: "c.example", maxPerMinute: 10, startPerMinute: 20 }',
      ].join('\n'),
    );
    expect(configErrorOf(() => loadConfig(path, {}))).toBe(
      `${path}: distribution.domainRules: rule 3: startPerMinute 20 is above maxPerMinute 10`,
    );
  });

  it('accepts a ramp, an equal start and no limit', () => {
    const rules = [
      { domain: 'big.example', maxPerMinute: 600, startPerMinute: 60, rampMinutes: 30 },
      { domain: '*.big.example', maxPerMinute: 600, startPerMinute: 600 },
      { domain: '*', maxPerMinute: 0 },
    ];
    const config = loadConfig(undefined, { [variable]: JSON.stringify(rules) });
    expect(config.distribution.domainRules).toEqual(rules);
  });

  it('words invalid JSON like other environment errors', () => {
    const message = configErrorOf(() => loadConfig(undefined, { [variable]: '[nope' }));
    expect(message).toMatch(
      new RegExp(
        `^environment variable ${variable}: expected a JSON array such as ` +
          String.raw`\[\{"domain": "\*", "maxPerMinute": 60\}\], got "\[nope", which is not ` +
          String.raw`valid JSON \(.+\)$`,
      ),
    );
  });
});

describe('environment names and docs', () => {
  it('names are unique and upper snake case', () => {
    const names = SETTINGS.map((s) => environmentName(s.path));
    expect(new Set(names).size).toBe(names.length);
    expect(environmentName('delivery.perDomainRatePerMinute')).toBe(
      'HERALD_DELIVERY_PER_DOMAIN_RATE_PER_MINUTE',
    );
  });

  it('docs/configuration.md lists every setting', () => {
    // Prettier pads table cells, so rows are compared cell by cell without the padding.
    const normalise = (row: string) =>
      row
        .split('|')
        .map((cell) => cell.trim().replace(/^-+$/, '---'))
        .join('|');
    const docs = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    const documented = new Set(docs.split('\n').map(normalise));
    for (const row of settingsTable().split('\n')) {
      expect(documented.has(normalise(row)), row).toBe(true);
    }
  });
});
