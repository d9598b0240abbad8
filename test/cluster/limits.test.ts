/**
 * Per-destination concurrency across nodes: two sets of delivery workers, each with its own
 * connection to one PostgreSQL database and `perDomainConcurrency: 1`, deliver to one slow
 * receiver. A slot held by another connection stops both nodes, and once it is free at most
 * one delivery is ever inside DATA.
 */
import { Writable } from 'node:stream';

import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Resolver } from '../../src/dns/index.js';
import { startDeliveryWorkers, type DeliveryWorkers } from '../../src/delivery/index.js';
import { createLogger } from '../../src/log/index.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/types.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';

/** How long the receiver holds each message before its 250, so deliveries would overlap. */
const DATA_DELAY_MS = 300;
const MESSAGES_PER_NODE = 3;

let postgres: PostgresCluster;
let dns: DnsServer;
let receiver: SMTPServer;
let receiverPort = 0;
let inData = 0;
let maxInData = 0;
let received = 0;

beforeAll(async () => {
  postgres = await startPostgres();
  receiver = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      inData++;
      maxInData = Math.max(maxInData, inData);
      stream.pipe(new Writable({ write: (_chunk, _encoding, next) => next() }));
      stream.on('end', () => {
        setTimeout(() => {
          inData--;
          received++;
          callback();
        }, DATA_DELAY_MS);
      });
    },
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.31', resolve));
  const address = receiver.server.address();
  receiverPort = typeof address === 'object' && address ? address.port : 0;
  dns = await startDnsServer({
    records: [
      { name: 'slow.test', type: 'MX', priority: 10, exchange: 'mx.slow.test' },
      { name: 'mx.slow.test', type: 'A', address: '127.0.0.31' },
    ],
  });
});

afterAll(async () => {
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
  await dns.close();
  await postgres.stop();
});

function startNode(store: Store, delivered: string[]): DeliveryWorkers {
  return startDeliveryWorkers({
    store,
    resolver: new Resolver({ servers: [dns.address], timeoutMs: 1_000, tries: 1 }),
    logger: createLogger({ level: 'silent' }),
    maxSleepMs: 100,
    onOutcome: (entry, outcome) => {
      if (outcome.status === 'delivered') delivered.push(entry.recipient);
    },
    config: {
      hostname: 'herald.test',
      delivery: {
        port: receiverPort,
        concurrency: 4,
        perDomainConcurrency: 1,
        perDomainRatePerMinute: 0,
        requireTls: [],
        retrySchedule: { initialDelay: 60_000, factor: 2, maxDelay: 600_000 },
        maxQueueLifetime: 86_400_000,
        connectTimeout: 2_000,
        leaseTime: 60_000,
        retainFinished: 604_800_000,
      },
    },
  });
}

async function enqueue(store: Store, recipient: string): Promise<void> {
  await store.enqueue({
    body: Buffer.from(`From: a@origin.test\r\nTo: ${recipient}\r\nSubject: s\r\n\r\nbody\r\n`),
    origin: 'inbound',
    originalSender: 'a@origin.test',
    recipients: [{ recipient, sender: 'a@origin.test', bounceTo: 'a@origin.test' }],
  });
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((wake) => setTimeout(wake, 50));
  return check();
}

describe('per-domain limit across nodes', () => {
  it('holds one session for two nodes', async () => {
    const url = await postgres.createDatabase();
    const storeA = await openStore({ url });
    const storeB = await openStore({ url });
    const holder = await openStore({ url });
    const deliveredByA: string[] = [];
    const deliveredByB: string[] = [];
    const nodeA = startNode(storeA, deliveredByA);
    const nodeB = startNode(storeB, deliveredByB);
    try {
      // A third connection, standing for a busy node, holds the only slot to slow.test.
      const release = await holder.tryAcquireDestinationSlot!('slow.test', 1);
      expect(release).toBeDefined();

      const total = 2 * MESSAGES_PER_NODE;
      for (let index = 0; index < MESSAGES_PER_NODE; index++) {
        await enqueue(storeA, `a${index}@slow.test`);
        await enqueue(storeB, `b${index}@slow.test`);
      }
      nodeA.notify();
      nodeB.notify();

      // Both nodes' local limits would allow a session now; the shared slot does not.
      await new Promise((wake) => setTimeout(wake, 1_500));
      expect(received).toBe(0);
      expect(maxInData).toBe(0);

      await release!();
      expect(await waitFor(() => received === total, 30_000)).toBe(true);
      expect(maxInData).toBe(1);
      // The receiver counts a message before its 250 reaches the node, so wait for the outcome.
      const outcomes = (): number => deliveredByA.length + deliveredByB.length;
      expect(await waitFor(() => outcomes() >= total, 10_000)).toBe(true);
      expect(outcomes()).toBe(total);
    } finally {
      await nodeA.stop();
      await nodeB.stop();
      await storeA.close();
      await storeB.close();
      await holder.close();
    }
  });
});
