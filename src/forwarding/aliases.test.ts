import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { resolveAlias } from './aliases.js';

let store: Store;

beforeAll(async () => {
  store = await openStore({ url: ':memory:' });
  const club = await store.addDomain('club.test');
  const other = await store.addDomain('other.test');
  const add = (domainId: number, localPart: string, targets: string[], enabled = true) =>
    store.addAlias({ domainId, localPart, targets, enabled, dmarcPolicy: 'forward' });
  await add(club.id, 'info', ['info-target@dest.test']);
  await add(club.id, 'alice', ['alice@dest.test']);
  await add(club.id, 'alice+list', ['alice-lists@dest.test']);
  await add(club.id, 'old', ['old@dest.test'], false);
  await add(club.id, '*', ['catchall@dest.test']);
  await add(other.id, 'bob', ['bob@dest.test']);
});

afterAll(async () => {
  await store.close();
});

describe('resolveAlias', () => {
  const cases: [string, string, string | undefined, string | undefined][] = [
    // address, expected kind, match, first target
    ['info@club.test', 'alias', 'exact', 'info-target@dest.test'],
    ['INFO@Club.Test', 'alias', 'exact', 'info-target@dest.test'],
    ['info@club.test.', 'alias', 'exact', 'info-target@dest.test'],
    ['alice+news@club.test', 'alias', 'subaddress', 'alice@dest.test'],
    ['alice+list@club.test', 'alias', 'exact', 'alice-lists@dest.test'],
    ['nobody@club.test', 'alias', 'catch-all', 'catchall@dest.test'],
    ['old@club.test', 'disabled', 'exact', 'old@dest.test'],
    ['old+tag@club.test', 'disabled', 'subaddress', 'old@dest.test'],
    ['bob@other.test', 'alias', 'exact', 'bob@dest.test'],
    ['nobody@other.test', 'unknown-user', undefined, undefined],
    ['+tag@other.test', 'unknown-user', undefined, undefined],
    ['info@elsewhere.test', 'not-hosted', undefined, undefined],
    ['no-at-sign', 'not-hosted', undefined, undefined],
  ];

  it.each(cases)('%s resolves to %s', async (address, kind, match, target) => {
    const lookup = await resolveAlias(store, address);
    expect(lookup.kind).toBe(kind);
    if (lookup.kind === 'alias' || lookup.kind === 'disabled') {
      expect(lookup.match).toBe(match);
      expect(lookup.alias.targets[0]).toBe(target);
    }
  });

  it('lets a disabled alias shadow the catch-all', async () => {
    const lookup = await resolveAlias(store, 'old@club.test');
    expect(lookup.kind).toBe('disabled');
  });
});
