import { afterEach, describe, expect, it } from 'vitest';
import { startSmtpSink, type SmtpSink } from '../../test/helpers/smtp-sink.js';
import { ConnectionPool, DestinationLimiter, Semaphore, type PoolOptions } from './pool.js';

const body = Buffer.from('Subject: pool\r\n\r\nbody\r\n');
let sink: SmtpSink | undefined;
let pool: ConnectionPool | undefined;

afterEach(async () => {
  pool?.closeAll();
  await sink?.close();
  pool = undefined;
  sink = undefined;
});

async function setUp(
  overrides: Partial<PoolOptions> = {},
): Promise<{ sink: SmtpSink; pool: ConnectionPool }> {
  sink = await startSmtpSink({ host: '127.0.0.1' });
  pool = new ConnectionPool({
    client: { hostname: 'herald.test', port: sink.port, connectTimeoutMs: 2_000 },
    ...overrides,
  });
  return { sink, pool };
}

const target = { host: 'mx.example.test', address: '127.0.0.1' };

describe('ConnectionPool', () => {
  it('reuses one session for several messages', async () => {
    const { sink, pool } = await setUp();
    for (let i = 0; i < 3; i++) {
      const connection = await pool.acquire(target, 'opportunistic');
      await connection.send({ from: 'a@origin.test', to: [`r${i}@example.test`], body });
      pool.release(connection, 'opportunistic');
    }
    const messages = await sink.waitForMessages(3);
    expect(sink.connections).toBe(1);
    expect(pool.opened).toBe(1);
    expect(new Set(messages.map((message) => message.sessionId)).size).toBe(1);
  });

  it('keeps sessions of different TLS policies apart', async () => {
    const { pool } = await setUp();
    const connection = await pool.acquire(target, 'opportunistic');
    pool.release(connection, 'opportunistic');
    await expect(pool.acquire(target, 'required')).rejects.toMatchObject({ stage: 'starttls' });
    expect(pool.idleCount).toBe(1);
  });

  it('retires a session after maxTransactions', async () => {
    const { sink, pool } = await setUp({ maxTransactions: 2 });
    for (let i = 0; i < 4; i++) {
      const connection = await pool.acquire(target, 'opportunistic');
      await connection.send({ from: 'a@origin.test', to: ['b@example.test'], body });
      pool.release(connection, 'opportunistic');
    }
    await sink.waitForMessages(4);
    expect(pool.opened).toBe(2);
  });

  it('closes idle sessions after the idle timeout', async () => {
    const { pool } = await setUp({ idleTimeoutMs: 50 });
    const connection = await pool.acquire(target, 'opportunistic');
    pool.release(connection, 'opportunistic');
    expect(pool.idleCount).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(pool.idleCount).toBe(0);
    expect(connection.usable).toBe(false);
  });

  it('drops a session the peer closed', async () => {
    const { sink, pool } = await setUp();
    const connection = await pool.acquire(target, 'opportunistic');
    pool.release(connection, 'opportunistic');
    connection.close();
    const next = await pool.acquire(target, 'opportunistic');
    expect(next).not.toBe(connection);
    expect(sink.connections).toBe(2);
    pool.release(next, 'opportunistic');
  });
});

describe('Semaphore', () => {
  it('admits at most its limit', async () => {
    const semaphore = new Semaphore(2);
    const first = await semaphore.acquire();
    await semaphore.acquire();
    let thirdAdmitted = false;
    const third = semaphore.acquire().then((release) => {
      thirdAdmitted = true;
      return release;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(thirdAdmitted).toBe(false);
    first();
    first();
    (await third)();
    expect(thirdAdmitted).toBe(true);
    expect(semaphore.inUse).toBe(1);
  });
});

describe('DestinationLimiter', () => {
  it('spaces message starts by the rate', () => {
    let now = 1_000_000;
    const limiter = new DestinationLimiter({
      perDomainConcurrency: 1,
      perDomainRatePerMinute: 60,
      now: () => now,
    });
    expect(limiter.reserveStart('a.test')).toBe(0);
    expect(limiter.reserveStart('a.test')).toBe(1_000);
    expect(limiter.reserveStart('a.test')).toBe(2_000);
    expect(limiter.reserveStart('b.test')).toBe(0);
    limiter.cancelStart('a.test');
    now += 1_500;
    expect(limiter.reserveStart('a.test')).toBe(500);
  });

  it('does not limit a rate of 0', () => {
    const limiter = new DestinationLimiter({ perDomainConcurrency: 1, perDomainRatePerMinute: 0 });
    expect(limiter.reserveStart('a.test')).toBe(0);
    expect(limiter.reserveStart('a.test')).toBe(0);
  });

  it('bounds concurrency per domain', async () => {
    const limiter = new DestinationLimiter({ perDomainConcurrency: 1, perDomainRatePerMinute: 0 });
    const release = await limiter.acquire('a.test');
    let second = false;
    void limiter.acquire('a.test').then(() => (second = true));
    await limiter.acquire('b.test');
    await new Promise((resolve) => setImmediate(resolve));
    expect(second).toBe(false);
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(second).toBe(true);
  });
});
