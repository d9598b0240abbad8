/**
 * Runs `herald serve` and the `herald` CLI as child processes for the end-to-end tests, on
 * loopback ports picked free for each run, with a data directory of their own. The process is
 * the real command, started through tsx so the tests run the current sources without a build.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { stringify } from 'yaml';

const ROOT = resolve(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
/** The bearer token the test configurations accept. */
export const API_TOKEN = 'e2e-test-token-0123456789';

/** Returns a TCP port that was free on `host` a moment ago. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * A parsed JSON response or log line. The tests check its shape with assertions, which report a
 * mismatch better than a type would, so it is left untyped.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export interface HeraldOptions {
  /** DNS server `127.0.0.1:PORT` the resolver queries. */
  dnsAddress: string;
  /** Port every MX host is reached on (`delivery.port`). */
  deliveryPort: number;
  /** Extra settings merged over the test defaults (nested objects, as in the file). */
  settings?: Record<string, unknown>;
  /** Reuse a data directory (a restart); a fresh one otherwise. */
  dataDir?: string;
}

export interface HeraldInstance {
  dataDir: string;
  configPath: string;
  mxPort: number;
  submissionPort: number;
  httpPort: number;
  /** stdout lines: pino JSON, one object a line. */
  logs: string[];
  child: ChildProcess;
  /** Sends a signal and waits for the process to exit; resolves to its exit code or signal. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
  /** Calls the REST API with the test token. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }>;
  /** Resolves once a log line matching `predicate` appears. */
  waitForLog(predicate: (entry: Json) => boolean, timeoutMs?: number): Promise<Json>;
}

export function makeDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'herald-e2e-'));
}

export function removeDataDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Writes the test configuration for a data directory and returns its path and ports. */
export async function writeConfig(dataDir: string, options: HeraldOptions) {
  const [mxPort, submissionPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const settings = merge(
    {
      hostname: 'mx.herald.test',
      dataDir,
      smtp: {
        mx: { host: '127.0.0.1', port: mxPort },
        submission: { host: '127.0.0.1', port: submissionPort },
      },
      http: { host: '127.0.0.1', port: httpPort },
      dns: { servers: [options.dnsAddress], timeout: '2s' },
      delivery: {
        port: options.deliveryPort,
        connectTimeout: '3s',
        retrySchedule: { initialDelay: '1s', factor: 1, maxDelay: '1s' },
        leaseTime: '30s',
      },
      srs: { domain: 'srs.herald.test' },
      api: { tokens: [API_TOKEN] },
      log: { level: 'info' },
    },
    options.settings ?? {},
  );
  const configPath = join(dataDir, 'herald.yaml');
  writeFileSync(configPath, stringify(settings));
  return { configPath, mxPort, submissionPort, httpPort };
}

/** Starts `herald serve` and resolves once `/healthz` responds 200. */
export async function startHerald(options: HeraldOptions): Promise<HeraldInstance> {
  const dataDir = options.dataDir ?? makeDataDir();
  const { configPath, mxPort, submissionPort, httpPort } = await writeConfig(dataDir, options);

  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', configPath], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HERALD_CONFIG: '' },
  });
  const logs: string[] = [];
  const listeners: Array<() => void> = [];
  let stderr = '';
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    logs.push(...lines.filter((line) => line !== ''));
    for (const listener of listeners) listener();
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | string>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit(code ?? signal ?? 'unknown'));
  });

  const instance: HeraldInstance = {
    dataDir,
    configPath,
    mxPort,
    submissionPort,
    httpPort,
    logs,
    child,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    async api(method, path, body) {
      const response = await fetch(`http://127.0.0.1:${httpPort}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${API_TOKEN}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await response.text();
      return { status: response.status, body: text === '' ? undefined : safeJson(text) };
    },
    waitForLog(predicate, timeoutMs = 15_000) {
      return new Promise((resolveLog, reject) => {
        const check = () => {
          for (const line of logs) {
            const entry = safeJson(line);
            if (entry && typeof entry === 'object' && predicate(entry)) {
              cleanup();
              resolveLog(entry);
              return;
            }
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `no matching log line in ${timeoutMs} ms; last lines:\n${logs.slice(-10).join('\n')}`,
            ),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          const index = listeners.indexOf(check);
          if (index >= 0) listeners.splice(index, 1);
        };
        listeners.push(check);
        check();
      });
    },
  };

  await waitForHealth(httpPort, exited, () => `${stderr}\n${logs.slice(-20).join('\n')}`);
  return instance;
}

async function waitForHealth(
  port: number,
  exited: Promise<number | string>,
  output: () => string,
): Promise<void> {
  let done: number | string | undefined;
  void exited.then((code) => (done = code));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (done !== undefined)
      throw new Error(`herald serve exited (${done}) before it was ready:\n${output()}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`, {
        signal: AbortSignal.timeout(1_000),
      });
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
  }
  throw new Error(`herald serve was not ready within 30 s:\n${output()}`);
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `herald ARGS` to completion, with `input` on standard input. */
export function runHerald(args: string[], input?: string): Promise<CommandResult> {
  return runCommand(process.execPath, ['--import', 'tsx', CLI, ...args], input, ROOT);
}

/** Runs a program with a time limit; never throws for a non-zero exit. */
export function runCommand(
  program: string,
  args: string[],
  input?: string | Buffer,
  cwd = ROOT,
  timeoutMs = 60_000,
): Promise<CommandResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(program, args, {
      cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolveRun({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

function safeJson(text: string): Json {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function merge(
  base: Record<string, unknown>,
  extra: Record<string, unknown>,
): Record<string, unknown> {
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = result[key];
    result[key] = isPlainObject(current) && isPlainObject(value) ? merge(current, value) : value;
  }
  return result;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
