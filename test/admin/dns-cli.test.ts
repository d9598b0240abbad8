/**
 * `herald dns check` run as a real process against the loopback DNS server: a domain whose
 * records are published as `herald domain show` prints them is ready (exit 0), and the same
 * domain with a damaged DKIM record is not (exit 1, with the finding and its fix).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';

import { startDnsServer, type DnsRecord, type DnsServer } from '../helpers/dns-server.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HOST = 'mail.herald.test';

interface Run {
  status: number;
  stdout: string;
}

function herald(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', ...args],
      { cwd: ROOT, timeout: 30_000, env: { ...process.env, HERALD_CONFIG: '' } },
      (error, stdout) => {
        const status = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ status, stdout });
      },
    );
  });
}

/** Turns the records of `herald domain show --json` into zone records, TXT cut at 255. */
function zoneOf(records: { name: string; type: string; value: string }[]): DnsRecord[] {
  return records.map((record) =>
    record.type === 'MX'
      ? {
          name: record.name,
          type: 'MX',
          priority: Number(record.value.split(' ')[0]),
          exchange: record.value.split(' ')[1]!,
        }
      : { name: record.name, type: 'TXT', value: record.value.match(/.{1,255}/g)! },
  );
}

describe('herald dns check', () => {
  let directory: string;
  let config: string;
  let dns: DnsServer;
  let published: DnsRecord[];

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'herald-dns-cli-'));
    dns = await startDnsServer({ records: [] });
    config = join(directory, 'herald.yaml');
    await writeFile(
      config,
      stringify({
        hostname: HOST,
        dataDir: directory,
        dns: { servers: [dns.address], timeout: '1s' },
        srs: { domain: 'srs.herald.test' },
      }),
    );
    expect((await herald(['domain', 'add', 'club.example', '--config', config])).status).toBe(0);
    const show = await herald(['domain', 'show', 'club.example', '--json', '--config', config]);
    const { records } = JSON.parse(show.stdout) as {
      records: { name: string; type: string; value: string }[];
    };
    published = [{ name: HOST, type: 'A', address: '127.0.0.1' }, ...zoneOf(records)];
  });

  afterAll(async () => {
    await dns?.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('reports a published domain ready', async () => {
    dns.set(published);
    const run = await herald(['dns', 'check', 'club.example', '--config', config]);
    expect(run.stdout).toContain('DNS check of club.example: ready (0 errors, 0 warnings)');
    expect(run.stdout).toContain('met      DKIM signatures aligned with the From domain');
    expect(run.stdout).toContain('NOT MET  Forward-confirmed reverse DNS');
    expect(run.status).toBe(0);
  });

  it('reports a damaged DKIM record with its fix', async () => {
    const damaged = published.map((record) =>
      record.type === 'TXT' && record.name.includes('r._domainkey.')
        ? { ...record, value: [`"${[record.value].flat().join('')}"`.slice(0, 255)] }
        : record,
    );
    dns.set(damaged);
    const run = await herald(['dns', 'check', 'club.example', '--config', config]);
    expect(run.status).toBe(1);
    expect(run.stdout).toContain('not ready');
    expect(run.stdout).toContain('The value contains quote characters');
    expect(run.stdout).toContain('fix: Edit the record and remove every " character');
  });

  it('prints the report as JSON', async () => {
    dns.set(published);
    const run = await herald(['dns', 'check', 'club.example', '--json', '--config', config]);
    const report = JSON.parse(run.stdout) as { ok: boolean; records: { status: string }[] };
    expect(report.ok).toBe(true);
    expect(report.records.length).toBeGreaterThanOrEqual(7);
  });
});
