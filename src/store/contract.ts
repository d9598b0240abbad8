/**
 * The contract every store backend keeps, as a vitest suite. A backend's test file calls
 * `describeStoreContract('name', open)` with a function that opens a fresh, migrated, empty
 * store; `open` may be called twice in one test to get two connections to the same database
 * (`shared: true`), which checks that leases hold across processes.
 *
 * This file is only for tests; nothing in the server imports it.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { LeaseLostError, StoreConflictError } from './errors.js';
import type { NewMessage, Store } from './types.js';

export interface OpenStore {
  /** A fresh empty store; with `shared`, another connection to the last store opened. */
  (options?: { shared?: boolean }): Promise<Store>;
}

const HOUR = 3_600_000;

/** A PKCS#8 Ed25519 private key that signs nothing real; the store keeps its text as given. */
const TEST_PEM = [
  '-----BEGIN PRIVATE KEY-----',
  'MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC',
  '-----END PRIVATE KEY-----',
  '',
].join('\n');

/** Every field of a `DkimKeyRecord`, sorted: a record with more would carry the private key. */
const DKIM_RECORD_FIELDS = [
  'algorithm',
  'createdAt',
  'domainId',
  'id',
  'privateKeyPath',
  'publicRecord',
  'selector',
  'status',
];

function message(recipients: string[], body = 'Subject: t\r\n\r\nhello\r\n'): NewMessage {
  return {
    body: Buffer.from(body),
    origin: 'inbound',
    originalSender: 'author@example.org',
    clientAddress: '127.0.0.1',
    recipients: recipients.map((recipient) => ({
      recipient,
      sender: 'SRS0=abcd=AB=example.org=author@srs.example.net',
      bounceTo: 'author@example.org',
    })),
  };
}

export function describeStoreContract(name: string, open: OpenStore): void {
  describe(`store contract: ${name}`, () => {
    const opened: Store[] = [];
    const openTracked = async (options?: { shared?: boolean }): Promise<Store> => {
      const store = await open(options);
      opened.push(store);
      return store;
    };

    afterEach(async () => {
      for (const store of opened.splice(0)) await store.close();
    });

    it('migrate runs twice without error', async () => {
      const store = await openTracked();
      await store.migrate();
      await store.migrate();
      expect(await store.listDomains()).toEqual([]);
    });

    it('domains are added, found, listed and removed', async () => {
      const store = await openTracked();
      const added = await store.addDomain('Example.ORG', { srsDomain: 'srs.example.org' });
      expect(added.name).toBe('example.org');
      expect(added.srsDomain).toBe('srs.example.org');
      expect(added.createdAt).toBeInstanceOf(Date);
      await store.addDomain('b.example');
      expect((await store.getDomain('EXAMPLE.org'))?.id).toBe(added.id);
      expect((await store.listDomains()).map((d) => d.name)).toEqual(['b.example', 'example.org']);
      await expect(store.addDomain('example.org')).rejects.toBeInstanceOf(StoreConflictError);
      expect(await store.removeDomain('example.org')).toBe(true);
      expect(await store.removeDomain('example.org')).toBe(false);
      expect(await store.getDomain('example.org')).toBeUndefined();
    });

    it('removing a domain removes its keys, aliases, credentials', async () => {
      const store = await openTracked();
      const domain = await store.addDomain('example.org');
      const key = await store.addDkimKey({
        domainId: domain.id,
        selector: 'h20261203r',
        algorithm: 'rsa-sha256',
        privateKeyPath: '/keys/example.org/h20261203r.pem',
        privateKeyPem: TEST_PEM,
        publicRecord: 'v=DKIM1; k=rsa; p=AAAA',
        status: 'active',
      });
      await store.addAlias({
        domainId: domain.id,
        localPart: 'info',
        targets: ['a@example.net'],
        enabled: true,
        dmarcPolicy: 'forward',
      });
      await store.addCredential({ domainId: domain.id, username: 'u1', passwordHash: 'scrypt$x' });
      await store.removeDomain('example.org');
      const again = await store.addDomain('example.org');
      expect(await store.listDkimKeys(again.id)).toEqual([]);
      expect(await store.getDkimPrivateKey(key.id)).toBeUndefined();
      expect(await store.listAliases(again.id)).toEqual([]);
      expect(await store.getCredential('u1')).toBeUndefined();
    });

    it('DKIM keys keep their fields and status', async () => {
      const store = await openTracked();
      const domain = await store.addDomain('example.org');
      const key = await store.addDkimKey({
        domainId: domain.id,
        selector: 'h20261203e',
        algorithm: 'ed25519-sha256',
        privateKeyPath: '/keys/e.pem',
        privateKeyPem: null,
        publicRecord: 'v=DKIM1; k=ed25519; p=BBBB',
        status: 'pending',
      });
      await store.setDkimKeyStatus(key.id, 'active');
      const [listed] = await store.listDkimKeys(domain.id);
      expect(listed).toMatchObject({
        selector: 'h20261203e',
        algorithm: 'ed25519-sha256',
        privateKeyPath: '/keys/e.pem',
        publicRecord: 'v=DKIM1; k=ed25519; p=BBBB',
        status: 'active',
      });
      await expect(
        store.addDkimKey({ ...key, privateKeyPem: null, status: 'active' }),
      ).rejects.toBeInstanceOf(StoreConflictError);
    });

    it('DKIM private keys stay out of key records', async () => {
      const store = await openTracked();
      const domain = await store.addDomain('example.org');
      const added = await store.addDkimKey({
        domainId: domain.id,
        selector: 'h20261204r',
        algorithm: 'rsa-sha256',
        privateKeyPath: '/keys/r.pem',
        privateKeyPem: TEST_PEM,
        publicRecord: 'v=DKIM1; k=rsa; p=CCCC',
        status: 'active',
      });
      const listed = await store.listDkimKeys(domain.id);
      expect(Object.keys(added).sort()).toEqual(DKIM_RECORD_FIELDS);
      expect(Object.keys(listed[0]!).sort()).toEqual(DKIM_RECORD_FIELDS);
      expect(JSON.stringify(added)).not.toContain('PRIVATE KEY');
      expect(JSON.stringify(listed)).not.toContain('PRIVATE KEY');
      expect(await store.getDkimPrivateKey(added.id)).toBe(TEST_PEM);
    });

    it('DKIM private keys are read by another connection', async () => {
      const first = await openTracked();
      const domain = await first.addDomain('example.org');
      const stored = await first.addDkimKey({
        domainId: domain.id,
        selector: 'h20261204e',
        algorithm: 'ed25519-sha256',
        privateKeyPath: '/node-a/keys/e.pem',
        privateKeyPem: TEST_PEM,
        publicRecord: 'v=DKIM1; k=ed25519; p=DDDD',
        status: 'active',
      });
      const fileOnly = await first.addDkimKey({
        domainId: domain.id,
        selector: 'h20261204r',
        algorithm: 'rsa-sha256',
        privateKeyPath: '/node-a/keys/r.pem',
        privateKeyPem: null,
        publicRecord: 'v=DKIM1; k=rsa; p=EEEE',
        status: 'active',
      });
      const second = await openTracked({ shared: true });
      expect(await second.getDkimPrivateKey(stored.id)).toBe(TEST_PEM);
      expect(await second.getDkimPrivateKey(fileOnly.id)).toBeUndefined();
      expect(await second.getDkimPrivateKey(fileOnly.id + 1000)).toBeUndefined();
    });

    it('aliases are case-insensitive and keep targets', async () => {
      const store = await openTracked();
      const domain = await store.addDomain('example.org');
      await store.addAlias({
        domainId: domain.id,
        localPart: 'Info',
        targets: ['a@example.net', 'b@example.com'],
        enabled: false,
        dmarcPolicy: 'rewrite-from',
      });
      await store.addAlias({
        domainId: domain.id,
        localPart: '*',
        targets: ['c@example.net'],
        enabled: true,
        dmarcPolicy: 'reject',
      });
      const alias = await store.getAlias(domain.id, 'INFO');
      expect(alias?.targets).toEqual(['a@example.net', 'b@example.com']);
      expect(alias?.enabled).toBe(false);
      expect(alias?.dmarcPolicy).toBe('rewrite-from');
      expect((await store.getAlias(domain.id, '*'))?.enabled).toBe(true);
      expect(await store.getAlias(domain.id, 'info+tag')).toBeUndefined();
      expect((await store.listAliases(domain.id)).map((a) => a.localPart)).toEqual(['*', 'info']);
      expect(await store.removeAlias(domain.id, 'info')).toBe(true);
      expect(await store.removeAlias(domain.id, 'info')).toBe(false);
    });

    it('credentials are unique by username', async () => {
      const store = await openTracked();
      const domain = await store.addDomain('example.org');
      await store.addCredential({ domainId: domain.id, username: 'news', passwordHash: 'h1' });
      await expect(
        store.addCredential({ domainId: domain.id, username: 'news', passwordHash: 'h2' }),
      ).rejects.toBeInstanceOf(StoreConflictError);
      expect((await store.getCredential('news'))?.passwordHash).toBe('h1');
      expect((await store.listCredentials(domain.id)).length).toBe(1);
      expect(await store.removeCredential('news')).toBe(true);
      expect(await store.getCredential('news')).toBeUndefined();
    });

    it('enqueue stores body bytes and one entry per recipient', async () => {
      const store = await openTracked();
      const body = Buffer.from([0x53, 0x3a, 0x20, 0xff, 0x00, 0x0d, 0x0a, 0xe2, 0x82, 0xac]);
      const result = await store.enqueue({
        ...message(['x@Example.NET', 'y@example.com']),
        body,
      });
      expect(result.messageId).toMatch(/^[0-9A-Za-z]{10,16}$/);
      expect(result.entryIds.length).toBe(2);
      expect((await store.getMessageBody(result.messageId))?.equals(body)).toBe(true);
      const info = await store.getMessageInfo(result.messageId);
      expect(info?.size).toBe(body.length);
      expect(info?.originalSender).toBe('author@example.org');
      const entries = await store.listEntriesOfMessage(result.messageId);
      expect(entries.map((e) => e.recipientDomain)).toEqual(['example.net', 'example.com']);
      expect(entries[0]).toMatchObject({
        status: 'queued',
        attempts: 0,
        bounceTo: 'author@example.org',
        origin: 'inbound',
        lastReply: null,
      });
      const events = await store.listEvents({ messageId: result.messageId });
      expect(events.map((e) => e.kind)).toEqual(['queued', 'queued']);
    });

    it('enqueue rejects a message without recipients', async () => {
      const store = await openTracked();
      await expect(store.enqueue(message([]))).rejects.toThrow(/recipient/);
    });

    it('concurrent enqueues all commit with distinct ids', async () => {
      const store = await openTracked();
      const results = await Promise.all(
        Array.from({ length: 300 }, (_, i) => store.enqueue(message([`r${i}@example.net`]))),
      );
      expect(new Set(results.map((r) => r.messageId)).size).toBe(300);
      expect((await store.countByStatus()).queued).toBe(300);
    });

    it('claimDue leases due entries once', async () => {
      const store = await openTracked();
      await store.enqueue(message(['a@example.net', 'b@example.net', 'c@example.net']));
      const now = new Date(Date.now() + 1000);
      const first = await store.claimDue({ owner: 'w1', limit: 2, leaseMs: HOUR, now });
      const second = await store.claimDue({ owner: 'w2', limit: 10, leaseMs: HOUR, now });
      expect(first.length).toBe(2);
      expect(second.length).toBe(1);
      const ids = new Set([...first, ...second].map((e) => e.id));
      expect(ids.size).toBe(3);
      expect(await store.claimDue({ owner: 'w3', limit: 10, leaseMs: HOUR, now })).toEqual([]);
    });

    it('an expired lease makes the entry due again', async () => {
      const store = await openTracked();
      await store.enqueue(message(['a@example.net']));
      const start = Date.now() + 1000;
      const [claimed] = await store.claimDue({
        owner: 'dead-node',
        limit: 1,
        leaseMs: 60_000,
        now: new Date(start),
      });
      expect(claimed).toBeDefined();
      const early = await store.claimDue({
        owner: 'w2',
        limit: 1,
        leaseMs: 60_000,
        now: new Date(start + 59_000),
      });
      expect(early).toEqual([]);
      const late = await store.claimDue({
        owner: 'w2',
        limit: 1,
        leaseMs: 60_000,
        now: new Date(start + 61_000),
      });
      expect(late.map((e) => e.id)).toEqual([claimed!.id]);
    });

    it('entries not yet due are not claimed', async () => {
      const store = await openTracked();
      const { entryIds } = await store.enqueue(message(['a@example.net']));
      const [entry] = await store.claimDue({ owner: 'w1', limit: 1, leaseMs: HOUR });
      const later = new Date(Date.now() + 10 * 60_000);
      await store.completeAttempt(entry!.id, 'w1', {
        status: 'deferred',
        reply: '451 4.7.1 try again',
        mx: 'mx1.example.net',
        dsn: '4.7.1',
        nextAttemptAt: later,
      });
      expect(await store.claimDue({ owner: 'w1', limit: 1, leaseMs: HOUR })).toEqual([]);
      expect((await store.nextDueAt())?.getTime()).toBe(later.getTime());
      const due = await store.claimDue({
        owner: 'w1',
        limit: 1,
        leaseMs: HOUR,
        now: new Date(later.getTime() + 1),
      });
      expect(due.map((e) => e.id)).toEqual(entryIds);
      expect(due[0]?.attempts).toBe(1);
      expect(due[0]?.status).toBe('deferred');
      expect(due[0]?.lastReply).toBe('451 4.7.1 try again');
    });

    it('completeAttempt records the verdict and an event', async () => {
      const store = await openTracked();
      const { messageId } = await store.enqueue(message(['a@example.net', 'b@example.net']));
      const claimed = await store.claimDue({ owner: 'w1', limit: 2, leaseMs: HOUR });
      await store.completeAttempt(claimed[0]!.id, 'w1', {
        status: 'delivered',
        reply: '250 2.0.0 Ok: queued as ABC',
        mx: 'mx1.example.net',
        dsn: '2.0.0',
      });
      await store.completeAttempt(claimed[1]!.id, 'w1', {
        status: 'failed',
        reply: '550 5.1.1 no such user',
        mx: 'mx1.example.net',
        dsn: '5.1.1',
      });
      const entries = await store.listEntriesOfMessage(messageId);
      expect(entries.map((e) => e.status)).toEqual(['delivered', 'failed']);
      expect(entries[1]?.lastReply).toBe('550 5.1.1 no such user');
      expect(entries[1]?.lastDsn).toBe('5.1.1');
      const attempts = (await store.listEvents({ messageId })).filter((e) => e.kind === 'attempt');
      expect(attempts.map((e) => e.verdict)).toEqual(['delivered', 'failed']);
      expect(attempts[1]).toMatchObject({ mx: 'mx1.example.net', reply: '550 5.1.1 no such user' });
      expect(await store.countByStatus()).toEqual({
        queued: 0,
        deferred: 0,
        delivered: 1,
        failed: 1,
      });
      expect(await store.nextDueAt()).toBeUndefined();
      expect(await store.claimDue({ owner: 'w1', limit: 5, leaseMs: HOUR })).toEqual([]);
    });

    it('completeAttempt rejects an owner that lost the lease', async () => {
      const store = await openTracked();
      await store.enqueue(message(['a@example.net']));
      const start = Date.now() + 1000;
      const [entry] = await store.claimDue({
        owner: 'slow',
        limit: 1,
        leaseMs: 1000,
        now: new Date(start),
      });
      await store.claimDue({ owner: 'fast', limit: 1, leaseMs: HOUR, now: new Date(start + 2000) });
      const outcome = { status: 'delivered', reply: '250 ok', mx: 'mx', dsn: '2.0.0' } as const;
      await expect(store.completeAttempt(entry!.id, 'slow', outcome)).rejects.toBeInstanceOf(
        LeaseLostError,
      );
      await expect(store.renewLease([entry!.id], 'slow', 1000)).rejects.toBeInstanceOf(
        LeaseLostError,
      );
      await store.renewLease([entry!.id], 'fast', HOUR);
      await store.completeAttempt(entry!.id, 'fast', outcome);
      expect((await store.getEntry(entry!.id))?.status).toBe('delivered');
    });

    it('a deferred outcome needs nextAttemptAt', async () => {
      const store = await openTracked();
      const { entryIds } = await store.enqueue(message(['a@example.net']));
      await store.claimDue({ owner: 'w1', limit: 1, leaseMs: HOUR });
      await expect(
        store.completeAttempt(entryIds[0]!, 'w1', {
          status: 'deferred',
          reply: '421',
          mx: null,
          dsn: '4.4.1',
        }),
      ).rejects.toThrow(/nextAttemptAt/);
    });

    it('retryNow makes deferred entries due', async () => {
      const store = await openTracked();
      const { messageId, entryIds } = await store.enqueue(message(['a@example.net']));
      await store.claimDue({ owner: 'w1', limit: 1, leaseMs: HOUR });
      await store.completeAttempt(entryIds[0]!, 'w1', {
        status: 'deferred',
        reply: '421 busy',
        mx: null,
        dsn: '4.4.1',
        nextAttemptAt: new Date(Date.now() + HOUR),
      });
      expect(await store.retryNow({ messageId })).toBe(1);
      const due = await store.claimDue({ owner: 'w1', limit: 1, leaseMs: HOUR });
      expect(due.map((e) => e.id)).toEqual(entryIds);
      expect((await store.listEvents({ entryId: entryIds[0]! })).map((e) => e.kind)).toEqual([
        'queued',
        'attempt',
        'retry',
      ]);
      expect(await store.retryNow({ all: true })).toBe(1);
      expect(await store.retryNow({ entryId: 999_999 })).toBe(0);
    });

    it('deleteEntries removes the message with its last entry', async () => {
      const store = await openTracked();
      const { messageId, entryIds } = await store.enqueue(message(['a@x.example', 'b@x.example']));
      expect(await store.deleteEntries({ entryId: entryIds[0]! })).toBe(1);
      expect(await store.getMessageBody(messageId)).toBeDefined();
      expect(await store.deleteEntries({ messageId })).toBe(1);
      expect(await store.getMessageBody(messageId)).toBeUndefined();
      expect(await store.getEntry(entryIds[1]!)).toBeUndefined();
      const kinds = (await store.listEvents({ messageId })).map((e) => e.kind);
      expect(kinds.filter((k) => k === 'deleted').length).toBe(2);
      await expect(store.deleteEntries({})).rejects.toThrow(TypeError);
    });

    it('completeAttempt on a deleted entry is ignored', async () => {
      const store = await openTracked();
      const { messageId, entryIds } = await store.enqueue(message(['a@example.net']));
      await store.claimDue({ owner: 'w1', limit: 1, leaseMs: HOUR });
      await store.deleteEntries({ messageId });
      await store.completeAttempt(entryIds[0]!, 'w1', {
        status: 'delivered',
        reply: '250 ok',
        mx: 'mx',
        dsn: '2.0.0',
      });
      expect(await store.getEntry(entryIds[0]!)).toBeUndefined();
    });

    it('listEntries filters by status, domain and limit', async () => {
      const store = await openTracked();
      await store.enqueue(message(['a@one.example', 'b@two.example', 'c@two.example']));
      expect((await store.listEntries()).length).toBe(3);
      expect((await store.listEntries({ recipientDomain: 'TWO.example' })).length).toBe(2);
      expect((await store.listEntries({ status: 'deferred' })).length).toBe(0);
      expect((await store.listEntries({ limit: 1 })).map((e) => e.recipient)).toEqual([
        'a@one.example',
      ]);
    });

    it('nextDueAt counts a lease until it expires', async () => {
      const store = await openTracked();
      expect(await store.nextDueAt()).toBeUndefined();
      await store.enqueue(message(['a@example.net']));
      const now = new Date(Date.now() + 1000);
      await store.claimDue({ owner: 'w1', limit: 1, leaseMs: 30_000, now });
      expect((await store.nextDueAt())?.getTime()).toBe(now.getTime() + 30_000);
    });

    it('purgeFinished keeps messages with pending entries', async () => {
      const store = await openTracked();
      const done = await store.enqueue(message(['a@example.net']));
      const waiting = await store.enqueue(message(['b@example.net']));
      const [first] = await store.claimDue({ owner: 'w1', limit: 1, leaseMs: HOUR });
      expect(first?.messageId).toBe(done.messageId);
      await store.completeAttempt(first!.id, 'w1', {
        status: 'delivered',
        reply: '250 ok',
        mx: 'mx',
        dsn: '2.0.0',
      });
      expect(await store.purgeFinished(new Date(Date.now() + 1000))).toBe(1);
      expect(await store.getMessageBody(done.messageId)).toBeUndefined();
      expect(await store.getMessageBody(waiting.messageId)).toBeDefined();
      expect((await store.listEvents({ messageId: done.messageId })).length).toBe(2);
    });

    it('SRS tokens expire and the table is capped', async () => {
      const store = await openTracked();
      const now = new Date();
      const inHours = (h: number) => new Date(now.getTime() + h * HOUR);
      await store.putSrsToken(
        { token: 'old', original: 'o@example.org', expiresAt: inHours(1) },
        3,
      );
      await store.putSrsToken({ token: 't2', original: 'b@example.org', expiresAt: inHours(2) }, 3);
      await store.putSrsToken({ token: 't3', original: 'c@example.org', expiresAt: inHours(3) }, 3);
      expect(await store.getSrsToken('old', now)).toBe('o@example.org');
      expect(await store.getSrsToken('old', inHours(1))).toBeUndefined();
      await store.putSrsToken({ token: 't4', original: 'd@example.org', expiresAt: inHours(4) }, 3);
      expect(await store.getSrsToken('old', now)).toBeUndefined();
      expect(await store.getSrsToken('t2', now)).toBe('b@example.org');
      expect(await store.getSrsToken('t4', now)).toBe('d@example.org');
      expect(await store.getSrsToken('missing', now)).toBeUndefined();
    });

    it('two connections never claim the same entry', async () => {
      const first = await openTracked();
      const second = await openTracked({ shared: true });
      await Promise.all(
        Array.from({ length: 40 }, (_, i) => first.enqueue(message([`r${i}@example.net`]))),
      );
      const claims = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 === 0 ? first : second).claimDue({ owner: `w${i}`, limit: 5, leaseMs: HOUR }),
        ),
      );
      const ids = claims.flat().map((e) => e.id);
      expect(ids.length).toBe(40);
      expect(new Set(ids).size).toBe(40);
    });
  });
}
