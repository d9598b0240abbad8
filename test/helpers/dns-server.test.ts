import { promises as dnsPromises } from 'node:dns';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as packet from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { parseZoneFile, startDnsServer, type DnsServer } from './dns-server.js';

let server: DnsServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

function resolverFor(dns: DnsServer): dnsPromises.Resolver {
  const resolver = new dnsPromises.Resolver({ timeout: 300, tries: 1 });
  resolver.setServers([dns.address]);
  return resolver;
}

/** Send one question over TCP with the two-octet length prefix and decode the reply. */
async function queryTcp(
  port: number,
  name: string,
  type: 'TXT' | 'MX',
): Promise<packet.DecodedPacket> {
  const query = packet.encode({ type: 'query', id: 7, questions: [{ name, type }] });
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(query.length);
  const socket = net.connect(port, '127.0.0.1');
  socket.write(Buffer.concat([prefix, query]));
  let received = Buffer.alloc(0);
  for await (const chunk of socket) {
    received = Buffer.concat([received, chunk as Buffer]);
    if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) break;
  }
  socket.destroy();
  return packet.decode(received.subarray(2));
}

describe('startDnsServer', () => {
  it('serves records given as objects', async () => {
    server = await startDnsServer({
      records: [
        { name: 'a.test', type: 'MX', priority: 5, exchange: 'mx.a.test' },
        { name: 'mx.a.test', type: 'A', address: '127.0.0.21' },
      ],
    });
    const resolver = resolverFor(server);
    expect(await resolver.resolveMx('a.test')).toEqual([{ exchange: 'mx.a.test', priority: 5 }]);
    expect(await resolver.resolve4('mx.a.test')).toEqual(['127.0.0.21']);
    expect(server.address).toBe(`127.0.0.1:${server.port}`);
  });

  it('answers NXDOMAIN and NODATA apart', async () => {
    server = await startDnsServer({
      records: [{ name: 'a.test', type: 'A', address: '127.0.0.1' }],
    });
    const resolver = resolverFor(server);
    await expect(resolver.resolve4('b.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(resolver.resolveMx('a.test')).rejects.toMatchObject({ code: 'ENODATA' });
  });

  it('serves a zone file from disk', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'herald-dns-zone-'));
    try {
      const file = path.join(dir, 'example.zone');
      writeFileSync(file, '$ORIGIN example.test.\n@ IN MX 10 mx\nmx IN A 127.0.0.31\n');
      server = await startDnsServer({ zoneFile: file });
      const resolver = resolverFor(server);
      expect(await resolver.resolveMx('example.test')).toEqual([
        { exchange: 'mx.example.test', priority: 10 },
      ]);
      expect(await resolver.resolve4('mx.example.test')).toEqual(['127.0.0.31']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('replaces the zone with set', async () => {
    server = await startDnsServer({
      records: [{ name: 'a.test', type: 'A', address: '127.0.0.1' }],
    });
    server.set('a.test. 60 IN A 127.0.0.2\n');
    expect(await resolverFor(server).resolve4('a.test')).toEqual(['127.0.0.2']);
  });

  it('answers SERVFAIL or nothing on request', async () => {
    server = await startDnsServer({
      records: [{ name: 'a.test', type: 'A', address: '127.0.0.1' }],
    });
    const resolver = resolverFor(server);
    server.fail('a.test', 'servfail');
    await expect(resolver.resolve4('a.test')).rejects.toMatchObject({ code: 'ESERVFAIL' });
    server.fail('a.test', 'timeout');
    await expect(resolver.resolve4('a.test')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    server.fail('a.test', undefined);
    expect(await resolver.resolve4('a.test')).toEqual(['127.0.0.1']);
  });

  it('serves a large TXT record over TCP', async () => {
    // Four 255-octet strings do not fit the 512-octet UDP limit of a client without EDNS.
    const strings = ['a', 'b', 'c', 'd'].map((letter) => letter.repeat(255));
    server = await startDnsServer({ records: [{ name: 'big.test', type: 'TXT', value: strings }] });
    const reply = await queryTcp(server.port, 'big.test', 'TXT');
    const answer = reply.answers?.[0];
    expect(answer?.type).toBe('TXT');
    const data = (answer as packet.TxtAnswer).data as Buffer[];
    expect(data.map((part) => part.toString())).toEqual(strings);
    expect(await resolverFor(server).resolveTxt('big.test')).toEqual([strings]);
  });

  it('follows a CNAME inside the zone', async () => {
    server = await startDnsServer({
      records: [
        { name: 'www.test', type: 'CNAME', target: 'host.test' },
        { name: 'host.test', type: 'A', address: '127.0.0.9' },
      ],
    });
    expect(await resolverFor(server).resolve4('www.test')).toEqual(['127.0.0.9']);
  });

  it('records the questions it receives', async () => {
    server = await startDnsServer({
      records: [{ name: 'a.test', type: 'A', address: '127.0.0.1' }],
    });
    await resolverFor(server).resolve4('A.Test');
    expect(server.queries).toContain('a.test A');
  });
});

describe('parseZoneFile', () => {
  it('reads a BIND-style zone', () => {
    const text = [
      '$ORIGIN example.test.',
      '$TTL 120',
      '@ IN SOA ns hostmaster 1 3600 600 86400 60 ; skipped',
      '@ 300 IN MX 10 mx1',
      '  IN MX 20 mx2.other.test.',
      'mx1 A 127.0.0.11',
      'sel._domainkey IN TXT ( "v=DKIM1; k=rsa; "',
      '    "p=ABC\\"D\\059" )',
      'null IN MX 0 .',
      'www IN CNAME @',
    ].join('\n');
    expect(parseZoneFile(text)).toEqual([
      { name: 'example.test', type: 'MX', priority: 10, exchange: 'mx1.example.test', ttl: 300 },
      { name: 'example.test', type: 'MX', priority: 20, exchange: 'mx2.other.test', ttl: 120 },
      { name: 'mx1.example.test', type: 'A', address: '127.0.0.11', ttl: 120 },
      {
        name: 'sel._domainkey.example.test',
        type: 'TXT',
        value: ['v=DKIM1; k=rsa; ', 'p=ABC"D;'],
        ttl: 120,
      },
      { name: 'null.example.test', type: 'MX', priority: 0, exchange: '', ttl: 120 },
      { name: 'www.example.test', type: 'CNAME', target: 'example.test', ttl: 120 },
    ]);
  });

  it('uses the origin argument for relative names', () => {
    expect(parseZoneFile('mx IN A 127.0.0.1', 'zone.test')).toEqual([
      { name: 'mx.zone.test', type: 'A', address: '127.0.0.1', ttl: 300 },
    ]);
  });
});
