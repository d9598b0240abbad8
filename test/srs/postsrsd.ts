/**
 * Runs Debian's postsrsd 1.x on loopback for interop tests and benchmarks, and talks to it over
 * Postfix's `tcp_table` protocol: a request `get KEY\n` and a reply `CODE VALUE\n`, both with
 * whitespace, control characters, `%` and non-ASCII octets written as `%XX` (tcp_table(5)).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const POSTSRSD_PATH = '/usr/sbin/postsrsd';

export interface PostsrsdOptions {
  domain: string;
  /** Written one per line to the secret file; the first signs. */
  secrets: readonly string[];
  hashLength?: number;
  hashMinLength?: number;
  separator?: '=' | '+' | '-';
  excludeDomains?: readonly string[];
}

/** A tcp_table reply: 200 for a result, 500 for "not found" with postsrsd's reason. */
export interface TableReply {
  code: number;
  value: string;
}

/** Percent-encodes what tcp_table(5) requires: octets up to space, `%`, and 0x7f upward. */
export function encodeTableKey(key: string): string {
  let encoded = '';
  for (const byte of Buffer.from(key, 'utf8')) {
    encoded +=
      byte <= 0x20 || byte === 0x25 || byte >= 0x7f
        ? `%${byte.toString(16).padStart(2, '0')}`
        : String.fromCharCode(byte);
  }
  return encoded;
}

/** Reverses `encodeTableKey`, decoding the octets as UTF-8. */
export function decodeTableValue(value: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const hex = value.slice(i + 1, i + 3);
    if (value[i] === '%' && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(value.charAt(i), 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** One persistent tcp_table connection. The server replies to requests in order. */
export class TcpTableClient {
  private buffer = '';
  private readonly waiting: {
    resolve: (reply: TableReply) => void;
    reject: (error: Error) => void;
  }[] = [];

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('error', (error) => this.failAll(error));
    socket.on('close', () => this.failAll(new Error('tcp_table connection closed')));
  }

  static connect(port: number, timeoutMs = 5000): Promise<TcpTableClient> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connecting to 127.0.0.1:${port} timed out`));
      }, timeoutMs);
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.connect(port, '127.0.0.1', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        // Without it, Nagle's algorithm and delayed ACKs add about 40 ms per lookup.
        socket.setNoDelay(true);
        resolve(new TcpTableClient(socket));
      });
    });
  }

  get(key: string): Promise<TableReply> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(`get ${encodeTableKey(key)}\n`, 'latin1');
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + 1);
      const space = line.indexOf(' ');
      const code = Number(line.slice(0, space));
      const value = decodeTableValue(line.slice(space + 1));
      this.waiting.shift()?.resolve({ code, value });
    }
  }

  private failAll(error: Error): void {
    for (const request of this.waiting.splice(0)) request.reject(error);
  }
}

/** A running postsrsd with one open connection to each of its two lookup tables. */
export class Postsrsd {
  private constructor(
    private readonly child: ChildProcess,
    private readonly directory: string,
    readonly forwardPort: number,
    readonly reversePort: number,
    readonly forwardTable: TcpTableClient,
    readonly reverseTable: TcpTableClient,
    readonly log: () => string,
  ) {}

  /** Starts postsrsd in the foreground on two free loopback ports, as the current user. */
  static async start(options: PostsrsdOptions): Promise<Postsrsd> {
    const directory = await mkdtemp(join(tmpdir(), 'herald-postsrsd-'));
    const secretFile = join(directory, 'secrets');
    await writeFile(secretFile, options.secrets.map((secret) => `${secret}\n`).join(''), {
      mode: 0o600,
    });

    // A port found free can be taken before postsrsd binds it, so a failed start is retried.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const [forwardPort, reversePort] = await freePorts(2);
      const args = [
        `-s${secretFile}`,
        `-d${options.domain}`,
        '-l127.0.0.1',
        '-4',
        `-f${forwardPort}`,
        `-r${reversePort}`,
        `-a${options.separator ?? '='}`,
        `-n${options.hashLength ?? 4}`,
        `-N${options.hashMinLength ?? options.hashLength ?? 4}`,
        '-t60',
        ...(options.excludeDomains ?? []).map((domain) => `-X${domain}`),
      ];
      const child = spawn(POSTSRSD_PATH, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let log = '';
      child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
      try {
        const forwardTable = await connectWithRetry(forwardPort!, child);
        const reverseTable = await connectWithRetry(reversePort!, child);
        return new Postsrsd(
          child,
          directory,
          forwardPort!,
          reversePort!,
          forwardTable,
          reverseTable,
          () => log,
        );
      } catch (error) {
        lastError = new Error(`postsrsd did not start: ${String(error)}; output: ${log}`);
        child.kill('SIGTERM');
      }
    }
    await rm(directory, { recursive: true, force: true });
    throw lastError;
  }

  forward(address: string): Promise<TableReply> {
    return this.forwardTable.get(address);
  }

  reverse(address: string): Promise<TableReply> {
    return this.reverseTable.get(address);
  }

  /** Closes the connections, stops this postsrsd by its PID and removes its secret file. */
  async stop(): Promise<void> {
    this.forwardTable.close();
    this.reverseTable.close();
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    await rm(this.directory, { recursive: true, force: true });
  }
}

/** Finds free loopback ports by binding port 0 and releasing it. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      return server;
    }),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port assigned');
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Connects once postsrsd listens: up to 50 tries 50 ms apart, while the process lives. */
async function connectWithRetry(port: number, child: ChildProcess): Promise<TcpTableClient> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 50; attempt++) {
    if (child.exitCode !== null) throw new Error(`postsrsd exited with status ${child.exitCode}`);
    try {
      return await TcpTableClient.connect(port);
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw lastError;
}
