import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { startDnsServer, type DnsRecord, type DnsServer } from '../../test/helpers/dns-server.js';
import { checkDomain, createCheckLookups, type CheckLookups } from '../dns/check.js';
import { SqliteStore } from '../store/sqlite.js';
import type { DkimKeyRecord } from '../store/types.js';

import type { ManagementContext } from './context.js';
import {
  advanceRotation,
  confirmRemoval,
  delegationCnames,
  delegationZoneRecords,
  domainCheckTarget,
  enableDelegation,
  rotationStatus,
  startRotation,
} from './rotation.js';
import { addDomain } from './service.js';

const DOMAIN = 'club.example';
const START = new Date('2026-12-03T12:00:00Z');
const DAY = 24 * 60 * 60 * 1000;

let dns: DnsServer;
let lookups: CheckLookups;
let dataDir: string;
let context: ManagementContext;
let now: Date;

function published(keys: DkimKeyRecord[]): DnsRecord[] {
  return keys.map((key) => ({
    name: `${key.selector}._domainkey.${DOMAIN}`,
    type: 'TXT',
    value: key.publicRecord.match(/.{1,255}/g)!,
  }));
}

beforeAll(async () => {
  dns = await startDnsServer({ records: [] });
  lookups = createCheckLookups({ servers: [dns.address], timeoutMs: 500, tries: 1 });
});

afterAll(async () => {
  await dns.close();
});

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'herald-rotation-'));
  const store = new SqliteStore({ path: ':memory:' });
  await store.migrate();
  now = START;
  context = {
    store,
    dataDir,
    hostname: 'mail.herald.test',
    srsDomain: 'srs.herald.test',
    now: () => now,
  };
  dns.set([]);
});

afterEach(async () => {
  await context.store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('key rotation', () => {
  it('waits for DNS, switches, keeps the old key for the grace period', async () => {
    const { keys: original } = await addDomain(context, DOMAIN);
    now = new Date(START.getTime() + 30 * DAY);

    const started = await startRotation(context, DOMAIN);
    expect(started.stage).toBe('waiting-for-dns');
    expect(started.pending.map((entry) => entry.key.selector)).toEqual([
      'h20270102r',
      'h20270102e',
    ]);
    await expect(startRotation(context, DOMAIN)).rejects.toThrow(/already waiting for DNS/);

    const waiting = await advanceRotation(context, lookups, DOMAIN);
    expect(waiting.stage).toBe('waiting-for-dns');
    expect(waiting.pending.map((entry) => entry.check?.findings[0]?.code)).toEqual([
      'missing',
      'missing',
    ]);

    dns.set(published([...original, ...started.pending.map((entry) => entry.key)]));
    const switched = await advanceRotation(context, lookups, DOMAIN);
    expect(switched.stage).toBe('grace');
    expect(switched.active.map((key) => key.selector).sort()).toEqual(['h20270102e', 'h20270102r']);
    expect(switched.retired.map((entry) => entry.selector).sort()).toEqual([
      'h20261203e',
      'h20261203r',
    ]);
    expect(switched.message).toContain('until 2027-01-09');

    await expect(confirmRemoval(context, DOMAIN, 'h20261203r')).rejects.toThrow(/must stay/);
    now = new Date(now.getTime() + 8 * DAY);
    const removable = await rotationStatus(context, DOMAIN);
    expect(removable.stage).toBe('removable');
    expect(removable.message).toContain('can now be removed');

    await confirmRemoval(context, DOMAIN, 'h20261203r');
    const after = await confirmRemoval(context, DOMAIN, 'h20261203e');
    expect(after.stage).toBe('idle');
    const target = await domainCheckTarget(context, DOMAIN);
    expect(target.records.filter((record) => record.name.includes('._domainkey.'))).toHaveLength(2);
  });

  it('does not switch while a pending key is wrong in DNS', async () => {
    await addDomain(context, DOMAIN);
    const started = await startRotation(context, DOMAIN);
    const [rsa, ed] = started.pending.map((entry) => entry.key);
    dns.set([...published([ed!]), ...published([{ ...rsa!, publicRecord: ed!.publicRecord }])]);
    const status = await advanceRotation(context, lookups, DOMAIN);
    expect(status.stage).toBe('waiting-for-dns');
    expect(status.pending[0]!.check?.findings[0]?.code).toBe('key-mismatch');
  });
});

describe('delegated DKIM', () => {
  it('rotates through CNAMEs without client changes', async () => {
    await addDomain(context, DOMAIN);
    const zone = 'keys.provider.test';
    const started = await enableDelegation(context, DOMAIN, zone);
    expect(started.pending.map((entry) => entry.key.selector)).toEqual(['hd1r', 'hd1e']);

    // The client's CNAMEs, published once, and the provider's zone.
    const cnames: DnsRecord[] = delegationCnames(DOMAIN, zone).map((record) => ({
      name: record.name,
      type: 'CNAME',
      target: record.value,
    }));
    const providerZone = async (): Promise<DnsRecord[]> =>
      (await delegationZoneRecords(context, DOMAIN)).map((record) => ({
        name: record.name,
        type: 'TXT',
        value: record.value.match(/.{1,255}/g)!,
      }));
    dns.set([...cnames, ...(await providerZone())]);
    const first = await advanceRotation(context, lookups, DOMAIN);
    expect(first.active.map((key) => key.selector)).toEqual(['hd1r', 'hd1e']);

    const second = await startRotation(context, DOMAIN);
    expect(second.pending.map((entry) => entry.key.selector)).toEqual(['hd2r', 'hd2e']);
    dns.set([...cnames, ...(await providerZone())]);
    const switched = await advanceRotation(context, lookups, DOMAIN);
    expect(switched.active.map((key) => key.selector)).toEqual(['hd2r', 'hd2e']);
    // The retired slot keys stay in the provider's zone for their grace period.
    const names = (await delegationZoneRecords(context, DOMAIN)).map((record) => record.name);
    expect(names.map((name) => name.split('.')[0]).sort()).toEqual([
      'hd1e',
      'hd1r',
      'hd2e',
      'hd2r',
    ]);

    const report = await checkDomain(lookups, await domainCheckTarget(context, DOMAIN));
    const cnameChecks = report.records.filter((record) => record.kind === 'cname');
    expect(cnameChecks.map((record) => record.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
  });
});
