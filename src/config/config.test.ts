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
    expect(load({ HERALD_DISTRIBUTION_DOMAIN_RULES: '[nope' })).toThrow(
      /HERALD_DISTRIBUTION_DOMAIN_RULES: not valid JSON/,
    );
    expect(load({ HERALD_DISTRIBUTION_DOMAIN_RULES: '{"domain": "x"}' })).toThrow(
      /HERALD_DISTRIBUTION_DOMAIN_RULES.*expected a list of/,
    );
    expect(
      load({ HERALD_DISTRIBUTION_DOMAIN_RULES: '[{"domain": "x.example", "maxPerMinute": -1}]' }),
    ).toThrow(/expected a list of/);
    expect(
      load({ HERALD_DISTRIBUTION_DOMAIN_RULES: '[{"domain": "x.example", "maxPerHour": 5}]' }),
    ).toThrow(/expected a list of/);
    expect(load({ HERALD_DISTRIBUTION_PUBLIC_URL: 'ftp://x.example' })).toThrow(
      /HERALD_DISTRIBUTION_PUBLIC_URL.*http or https URL/,
    );
    expect(load({ HERALD_DISTRIBUTION_BOUNCE_LOCAL_PART: 'bounce+x' })).toThrow(
      /HERALD_DISTRIBUTION_BOUNCE_LOCAL_PART.*without \+/,
    );
    expect(load({ HERALD_DISTRIBUTION_BATCH_LEASE: '10' })).toThrow(/at least 1000 ms/);
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
