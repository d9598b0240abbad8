/**
 * The real peer tools the end-to-end tests drive, at their Debian paths: swaks and Postfix's
 * smtp-source as clients, Postfix's smtp-sink as a receiver, dkimpy (the Debian python3-dkim
 * package, importable by /usr/bin/python3) and OpenDKIM as independent DKIM verifiers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { runCommand, type CommandResult } from './harness.js';

export const SWAKS = '/usr/bin/swaks';
export const SMTP_SOURCE = '/usr/sbin/smtp-source';
export const SMTP_SINK = '/usr/sbin/smtp-sink';
export const OPENDKIM = '/usr/sbin/opendkim';
export const PYTHON_WITH_DKIMPY = '/usr/bin/python3';

/** Runs swaks with the given arguments; `--hide-all` is left to the caller. */
export function swaks(args: string[], input?: string): Promise<CommandResult> {
  return runCommand(SWAKS, ['--timeout', '20', ...args], input);
}

/** Returns the code of the first error reply swaks printed (`<** `, or `<~* ` inside TLS). */
export function rejectionCode(output: string): number | undefined {
  const match = /^<(?:\*\*|~\*) +(\d{3})[ -]/m.exec(output);
  return match ? Number(match[1]) : undefined;
}

/** The envelope-sender argument swaks needs for the null sender. */
export const NULL_SENDER = '<>';

const DKIMPY_SCRIPT = String.raw`
import json, sys, dkim
request = json.load(sys.stdin)
message = request["message"].encode("latin-1")
if request["action"] == "sign":
    signature = dkim.sign(message, request["selector"].encode(), request["domain"].encode(),
                          request["key"].encode(), include_headers=[b"from", b"to", b"subject",
                          b"date", b"message-id"], canonicalize=(b"relaxed", b"simple"))
    sys.stdout.write((signature + message).decode("latin-1"))
else:
    records = request["records"]
    def dnsfunc(name, timeout=5):
        value = records.get(name.decode().rstrip(".").lower())
        return value.encode() if value is not None else None
    verifier = dkim.DKIM(message)
    count = len([h for h in verifier.headers if h[0].lower() == b"dkim-signature"])
    results = []
    for index in range(count):
        results.append(bool(verifier.verify(idx=index, dnsfunc=dnsfunc)))
    json.dump(results, sys.stdout)
`;

/** Signs a message with dkimpy (relaxed/simple, rsa-sha256). */
export async function dkimpySign(
  message: string,
  options: { domain: string; selector: string; keyPem: string },
): Promise<string> {
  const request = { action: 'sign', message, ...options, key: options.keyPem };
  const result = await runCommand(
    PYTHON_WITH_DKIMPY,
    ['-c', DKIMPY_SCRIPT],
    JSON.stringify(request),
  );
  if (result.code !== 0) throw new Error(`dkimpy sign failed: ${result.stderr}`);
  return result.stdout;
}

/**
 * Verifies every DKIM-Signature of a message with dkimpy, answering DNS from `records`
 * (owner name to TXT value). Returns one verdict per signature, in header order.
 */
export async function dkimpyVerify(
  message: Buffer | string,
  records: Record<string, string>,
): Promise<boolean[]> {
  const text = Buffer.isBuffer(message) ? message.toString('latin1') : message;
  const request = { action: 'verify', message: text, records };
  const result = await runCommand(
    PYTHON_WITH_DKIMPY,
    ['-c', DKIMPY_SCRIPT],
    JSON.stringify(request),
  );
  if (result.code !== 0) throw new Error(`dkimpy verify failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as boolean[];
}

/**
 * Verifies a message with `opendkim -t`, its keys read from a `TestPublicKeys` file built from
 * `records`. Returns the `s=SELECTOR, d=DOMAIN` pairs of the signatures OpenDKIM passed.
 */
export async function opendkimVerify(
  message: Buffer | string,
  records: Record<string, string>,
): Promise<{ succeeded: string[]; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-opendkim-'));
  try {
    const keys = Object.entries(records).map(([name, value]) => `${name} ${value}`);
    writeFileSync(join(dir, 'keys'), `${keys.join('\n')}\n`);
    writeFileSync(join(dir, 'message.eml'), message);
    writeFileSync(
      join(dir, 'opendkim.conf'),
      `TestPublicKeys ${join(dir, 'keys')}\nSyslog no\nMode v\nAlwaysAddARHeader yes\n`,
    );
    const result = await runCommand(OPENDKIM, [
      '-x',
      join(dir, 'opendkim.conf'),
      '-t',
      join(dir, 'message.eml'),
      '-vv',
    ]);
    const output = result.stdout + result.stderr;
    // The Authentication-Results field OpenDKIM adds has one `dkim=` result per signature.
    const succeeded = [
      ...output.matchAll(/dkim=pass [^;]*header\.d=(\S+) [^;]*header\.s=(\S+)/g),
    ].map((match) => `s=${match[2]!}, d=${match[1]!}`);
    return { succeeded, output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface PostfixSink {
  host: string;
  port: number;
  dumpDir: string;
  /** Messages dumped so far, each with its envelope lines (`X-Rcpt-Args`, ...) first. */
  messages(): string[];
  close(): Promise<void>;
}

/**
 * Starts Postfix's smtp-sink on `host:port`, dumping every transaction to a file. Running as
 * root, smtp-sink needs `-u`; it drops to `nobody`, which must be able to write the dump
 * directory.
 */
export async function startPostfixSink(host: string, port: number): Promise<PostfixSink> {
  const dumpDir = mkdtempSync(join(tmpdir(), 'herald-smtp-sink-'));
  chmodSync(dumpDir, 0o777);
  const args = ['-d', `${dumpDir}/%M.`, '-m', '512', `${host}:${port}`, '256'];
  if (process.getuid?.() === 0) args.unshift('-u', 'nobody');
  const child: ChildProcess = spawn(SMTP_SINK, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  await waitForPort(host, port, child, () => stderr);
  return {
    host,
    port,
    dumpDir,
    messages: () =>
      readdirSync(dumpDir)
        .sort()
        .map((name) => readFileSync(join(dumpDir, name), 'latin1')),
    close: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await new Promise((resolveClose) => child.once('exit', resolveClose));
      rmSync(dumpDir, { recursive: true, force: true });
    },
  };
}

async function waitForPort(host: string, port: number, child: ChildProcess, output: () => string) {
  const { connect } = await import('node:net');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${SMTP_SINK} exited: ${output()}`);
    const open = await new Promise<boolean>((resolveOpen) => {
      const socket = connect(port, host);
      socket.once('connect', () => {
        socket.destroy();
        resolveOpen(true);
      });
      socket.once('error', () => resolveOpen(false));
    });
    if (open) return;
    await new Promise((resolveWait) => setTimeout(resolveWait, 50));
  }
  throw new Error(`${SMTP_SINK} did not listen on ${host}:${port}: ${output()}`);
}
