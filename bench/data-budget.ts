/**
 * Memory held by unfinished DATA: N clients (20 by default) each send M MiB (4 by default)
 * after DATA and never the final dot, the way the memory exhaustion attack did. The MX listener
 * runs with `limits.maxDataInFlight` at 0 (no limit, as before the budget existed) and at
 * 8 MiB, side by side in one run, three rounds each. The figure is the peak growth of
 * `process.memoryUsage().arrayBuffers`, where Node keeps socket chunks, sampled every 20 ms.
 * Growth is measured from the value before the clients connect, and the median round is shown.
 *
 *   npx tsx bench/data-budget.ts [clients] [mebibytes]
 *
 * The clients run in a child process, so their send buffers do not count.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log/index.js';
import { startSmtpListeners } from '../src/smtp/index.js';
import { SrsRewriter } from '../src/srs/index.js';
import { openStore } from '../src/store/index.js';

const MIB = 1024 * 1024;

/** Client mode: opens the connections, sends DATA and the bytes, then waits to be killed. */
async function runClients(port: number, clients: number, mebibytes: number): Promise<void> {
  const line = Buffer.from(`${'x'.repeat(998)}\r\n`);
  const chunk = Buffer.concat(Array.from({ length: 1024 }, () => line));
  const sessions = Array.from({ length: clients }, (_, index) =>
    sendWithoutDot(port, `127.0.0.${(index % 10) + 1}`, chunk, mebibytes),
  );
  const replies = await Promise.all(sessions);
  process.send?.({ replies });
}

function sendWithoutDot(port: number, localAddress: string, chunk: Buffer, mebibytes: number) {
  return new Promise<string>((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    const commands = ['EHLO bench.test', 'MAIL FROM:<a@origin.test>', 'RCPT TO:<list@club.test>'];
    let buffer = '';
    let sent = false;
    socket.setEncoding('utf8');
    socket.on('error', () => resolve('error'));
    socket.on('data', (data: string) => {
      buffer += data;
      if (!/^\d{3} [^\r\n]*\r\n/m.test(buffer)) return;
      const reply = buffer;
      buffer = '';
      const next = commands.shift();
      if (next !== undefined) return void socket.write(`${next}\r\n`);
      if (reply.startsWith('354') && !sent) {
        sent = true;
        socket.write('Subject: bench\r\n\r\n');
        let written = 0;
        const more = () => {
          while (written < mebibytes * MIB) {
            written += chunk.length;
            if (!socket.write(chunk)) return void socket.once('drain', more);
          }
          resolve('sent');
        };
        more();
        return;
      }
      if (!sent) return void socket.write('DATA\r\n');
      // A 452 during transfer arrives only after the dot, so any reply here ends the round.
      resolve(reply.trim().slice(0, 40));
    });
  });
}

async function round(maxDataInFlight: number, clients: number, mebibytes: number) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'herald-bench-budget-'));
  const store = await openStore({ url: `sqlite:${path.join(dataDir, 'herald.sqlite')}` });
  const club = await store.addDomain('club.test');
  await store.addAlias({
    domainId: club.id,
    localPart: 'list',
    targets: ['alice@dest.test'],
    enabled: true,
    dmarcPolicy: 'forward',
  });
  const config = loadConfig(undefined, {});
  config.hostname = 'mx.herald.test';
  config.dataDir = dataDir;
  config.smtp.mx = { host: '127.0.0.1', port: 0 };
  config.smtp.submission = { host: '127.0.0.1', port: 0 };
  config.limits = {
    ...config.limits,
    maxMessageSize: 0,
    maxDataInFlight,
    maxConnectionsPerClient: clients,
  };
  const listeners = await startSmtpListeners({
    store,
    config,
    logger: createLogger({ level: 'silent' }),
    srs: new SrsRewriter({ domain: 'srs.herald.test', secrets: ['bench'] }),
    dkimKeys: { signaturesFor: () => [] },
    resolver: { resolveTxt: () => Promise.resolve([]) },
  });

  global.gc?.();
  const base = process.memoryUsage().arrayBuffers;
  let peak = base;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  }, 20);
  const child = fork(fileURLToPath(import.meta.url), [
    'client',
    String(listeners.mx.port),
    String(clients),
    String(mebibytes),
  ]);
  await new Promise<void>((resolve) => child.once('message', () => resolve()));
  // Let the server read what is still in its socket buffers.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  clearInterval(sampler);
  child.kill();
  await listeners.close(1000);
  await store.close();
  rmSync(dataDir, { recursive: true, force: true });
  return (peak - base) / MIB;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  if (process.argv[2] === 'client') {
    await runClients(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]));
    return;
  }
  const clients = Number(process.argv[2] ?? 20);
  const mebibytes = Number(process.argv[3] ?? 4);
  const unlimited: number[] = [];
  const limited: number[] = [];
  for (let index = 0; index < 3; index++) {
    unlimited.push(await round(0, clients, mebibytes));
    limited.push(await round(8 * MIB, clients, mebibytes));
  }
  const sent = clients * mebibytes;
  console.log(`${clients} clients x ${mebibytes} MiB without the final dot (${sent} MiB sent)`);
  console.log(
    `no budget:  peak growth ${median(unlimited).toFixed(1)} MiB (rounds ${unlimited.map((v) => v.toFixed(1)).join(', ')})`,
  );
  console.log(
    `8 MiB budget: peak growth ${median(limited).toFixed(1)} MiB (rounds ${limited.map((v) => v.toFixed(1)).join(', ')})`,
  );
  console.log(`ratio: ${(median(unlimited) / median(limited)).toFixed(1)}x`);
}

await main();
