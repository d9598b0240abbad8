/**
 * Shared pieces of the DKIM interop tests: the message corpus, test keys with their zone, and
 * runners for the real peers, OpenDKIM (`opendkim -t`) and dkimpy (through Debian's python3).
 */
import { execFile } from 'node:child_process';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { dkimRecordValue, generateKeyPair, zoneFileRecord } from '../../src/dkim/index.js';

export const OPENDKIM = '/usr/sbin/opendkim';
/** Debian's python3 has dkimpy; a python3 earlier on PATH may not. */
export const PYTHON = '/usr/bin/python3';

const FIXTURES = fileURLToPath(new URL('../fixtures/dkim/', import.meta.url));
const DKIMPY_PEER = fileURLToPath(new URL('./dkimpy_peer.py', import.meta.url));

export interface CorpusMessage {
  name: string;
  bytes: Buffer;
}

/** Reads every `.eml` of the corpus, sorted by name. */
export async function loadCorpus(): Promise<CorpusMessage[]> {
  const names = (await readdir(FIXTURES)).filter((name) => name.endsWith('.eml')).sort();
  return Promise.all(
    names.map(async (name) => ({ name, bytes: await readFile(join(FIXTURES, name)) })),
  );
}

/** A 10 MB message built in memory, so the repository does not carry it. */
export function largeMessage(megabytes = 10): Buffer {
  const header = 'From: bulk@example.com\r\nTo: someone@example.net\r\nSubject: large\r\n\r\n';
  const line = 'A line of a large message body, with  double spaces and a tab\there.  \r\n';
  const count = Math.ceil((megabytes * 1024 * 1024) / line.length);
  return Buffer.from(header + line.repeat(count));
}

export interface TestKey {
  selector: string;
  domain: string;
  privateKey: KeyObject;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  recordValue: string;
}

/** Generates an RSA-2048 and an Ed25519 key for `example.com`. */
export async function createTestKeys(): Promise<{ rsa: TestKey; ed25519: TestKey }> {
  const rsa = await generateKeyPair({ algorithm: 'rsa', bits: 2048 });
  const ed = await generateKeyPair({ algorithm: 'ed25519' });
  return {
    rsa: {
      selector: 'rsa2048',
      domain: 'example.com',
      privateKey: rsa.privateKey,
      algorithm: 'rsa-sha256',
      recordValue: dkimRecordValue(rsa.publicKey),
    },
    ed25519: {
      selector: 'ed',
      domain: 'example.com',
      privateKey: ed.privateKey,
      algorithm: 'ed25519-sha256',
      recordValue: dkimRecordValue(createPublicKey(ed.privateKey)),
    },
  };
}

export interface Workspace {
  directory: string;
  zoneFile: string;
  opendkimConfig: string;
  /** The key records by DNS name, as dkimpy's dnsfunc returns them. */
  records: Record<string, string>;
}

/** Writes the zone file, OpenDKIM's TestPublicKeys file and its configuration. */
export async function createWorkspace(keys: readonly TestKey[]): Promise<Workspace> {
  const directory = await mkdtemp(join(tmpdir(), 'herald-dkim-'));
  const records: Record<string, string> = {};
  let zone = '$ORIGIN example.com.\n$TTL 300\n';
  let publicKeys = '';
  for (const key of keys) {
    const name = `${key.selector}._domainkey.${key.domain}`;
    records[name] = key.recordValue;
    zone += zoneFileRecord(key.selector, key.domain, key.recordValue);
    publicKeys += `${name} ${key.recordValue}\n`;
  }
  const zoneFile = join(directory, 'example.com.zone');
  const publicKeysFile = join(directory, 'test-public-keys');
  const opendkimConfig = join(directory, 'opendkim.conf');
  await writeFile(zoneFile, zone);
  await writeFile(publicKeysFile, publicKeys);
  await writeFile(opendkimConfig, `Mode v\nSyslog no\nTestPublicKeys ${publicKeysFile}\n`);
  return { directory, zoneFile, opendkimConfig, records };
}

function run(
  command: string,
  args: string[],
  input?: string,
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error !== null) reject(new Error(`${command} failed: ${error.message}\n${stderr}`));
        else resolve({ stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/**
 * Verifies files with `opendkim -t` and returns OpenDKIM's report line for each, by path.
 * OpenDKIM exits 0 whatever the verdict, so the verdict is read from the report.
 */
export async function opendkimVerify(
  workspace: Workspace,
  paths: readonly string[],
): Promise<Map<string, string>> {
  const { stdout, stderr } = await run(OPENDKIM, [
    '-x',
    workspace.opendkimConfig,
    '-t',
    paths.join(','),
  ]);
  const lines = `${stdout}\n${stderr}`.split('\n').filter((line) => line.startsWith('opendkim: '));
  const reports = new Map<string, string>();
  for (const path of paths) {
    reports.set(path, lines.filter((line) => line.startsWith(`opendkim: ${path}: `)).join('\n'));
  }
  return reports;
}

/** True when an OpenDKIM report line says the signature verified. */
export function opendkimPassed(report: string): boolean {
  return /verification \(.*\) succeeded/.test(report) && !report.includes('failed');
}

export type DkimpyJob =
  | { op: 'verify'; path: string }
  | {
      op: 'sign';
      path: string;
      selector: string;
      domain: string;
      key: string;
      algorithm: string;
      canonicalization: string;
    };

export type DkimpyResult = { ok?: boolean[]; signature?: string; error?: string };

/** Runs dkimpy on every job in one Python process. */
export async function runDkimpy(
  workspace: Workspace,
  jobs: readonly DkimpyJob[],
): Promise<DkimpyResult[]> {
  const request = JSON.stringify({ zone: workspace.records, jobs });
  const { stdout } = await run(PYTHON, [DKIMPY_PEER], request);
  return JSON.parse(stdout) as DkimpyResult[];
}

/** The key as dkimpy reads it: PKCS#1 PEM for RSA, the base64 seed for Ed25519. */
export function dkimpyKey(key: TestKey): string {
  if (key.algorithm === 'rsa-sha256')
    return key.privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
  const der = key.privateKey.export({ format: 'der', type: 'pkcs8' });
  return der.subarray(der.length - 32).toString('base64');
}
