/**
 * The `herald dkim` commands as scripts call them: their forms, output and exit status. The
 * CLI runs from source through tsx, and signed output is checked with OpenDKIM as well.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { beforeAll, describe, expect, it } from 'vitest';

import { opendkimPassed, opendkimVerify, type Workspace } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MESSAGE =
  'From: Alice <alice@example.com>\nTo: bob@example.net\nSubject: CLI\n\nHello from the CLI.\n';

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

function herald(args: string[], input?: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'dkim', ...args],
      { cwd: ROOT, timeout: 30_000 },
      (error, stdout, stderr) => {
        let code = 0;
        if (error !== null) code = typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(input ?? '');
  });
}

let directory: string;
let zoneFile: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'herald-cli-'));
  const rsa = await herald([
    'keygen',
    '--domain',
    'example.com',
    '--selector',
    'cli',
    '--out',
    join(directory, 'keys'),
  ]);
  expect(rsa.code).toBe(0);
  const ed = await herald([
    'keygen',
    '--domain',
    'example.com',
    '--selector',
    'cli-ed',
    '--algorithm',
    'ed25519',
    '--out',
    join(directory, 'keys'),
  ]);
  expect(ed.code).toBe(0);
  zoneFile = join(directory, 'zone');
  await writeFile(zoneFile, `$TTL 300\n${rsa.stdout}${ed.stdout}`);
  await writeFile(join(directory, 'a.eml'), MESSAGE);
  await writeFile(join(directory, 'b.eml'), MESSAGE.replace('CLI', 'second'));
  await writeFile(join(directory, 'nofrom.eml'), 'To: bob@example.net\n\nno From\n');
});

describe('herald dkim keygen', () => {
  it('writes a 0600 key and prints the zone line', async () => {
    const mode = (await stat(join(directory, 'keys', 'cli.private.pem'))).mode & 0o777;
    expect(mode).toBe(0o600);
    const zone = await readFile(zoneFile, 'utf8');
    expect(zone).toMatch(/^cli\._domainkey\.example\.com\.\tIN\tTXT\t\( "v=DKIM1; k=rsa; "/m);
    expect(zone).toMatch(/cli-ed\._domainkey\.example\.com\.\tIN\tTXT\t\( "v=DKIM1; k=ed25519; "/);
  });

  it('refuses to overwrite a key', async () => {
    const again = await herald([
      'keygen',
      '--domain',
      'example.com',
      '--selector',
      'cli',
      '--out',
      join(directory, 'keys'),
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
  });

  it('rejects bad options with status 2', async () => {
    const bits = await herald([
      'keygen',
      '--domain',
      'example.com',
      '--selector',
      'x',
      '--bits',
      '512',
      '--out',
      directory,
    ]);
    expect(bits.code).toBe(2);
    const missing = await herald(['keygen', '--selector', 'x', '--out', directory]);
    expect(missing.code).toBe(2);
  });
});

describe('herald dkim sign and verify', () => {
  it('signs stdin to stdout and verifies offline', async () => {
    const signed = await herald(
      [
        'sign',
        '--domain',
        'example.com',
        '--selector',
        'cli',
        '--key',
        join(directory, 'keys', 'cli.private.pem'),
      ],
      MESSAGE,
    );
    expect(signed.code).toBe(0);
    expect(signed.stdout).toMatch(
      /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example.com;/,
    );
    const verified = await herald(['verify', '--records', zoneFile], signed.stdout);
    expect(verified.stdout).toBe('stdin: example.com cli pass\n');
    expect(verified.code).toBe(0);
  });

  it('signs several files into --out-dir, and OpenDKIM agrees', async () => {
    const out = join(directory, 'out');
    const key = join(directory, 'keys', 'cli-ed.private.pem');
    const signed = await herald([
      'sign',
      '--domain',
      'example.com',
      '--selector',
      'cli-ed',
      '--key',
      key,
      '--canonicalization',
      'simple/simple',
      '--headers',
      'From,To,Subject',
      '--out-dir',
      out,
      join(directory, 'a.eml'),
      join(directory, 'b.eml'),
    ]);
    expect(signed.code).toBe(0);
    expect((await readdir(out)).sort()).toEqual(['a.eml', 'b.eml']);
    const text = await readFile(join(out, 'a.eml'), 'utf8');
    expect(text).toMatch(/a=ed25519-sha256; c=simple\/simple;/);
    expect(text.replace(/\r\n /g, ' ')).toMatch(
      /h=from : to : subject : from : subject : to : cc :/,
    );
    const verified = await herald([
      'verify',
      '--records',
      zoneFile,
      join(out, 'a.eml'),
      join(out, 'b.eml'),
    ]);
    expect(verified.code).toBe(0);
    expect(verified.stdout.trim().split('\n')).toEqual([
      `${join(out, 'a.eml')}: example.com cli-ed pass`,
      `${join(out, 'b.eml')}: example.com cli-ed pass`,
    ]);
    const publicKeys = join(directory, 'keys.txt');
    const zone = await readFile(zoneFile, 'utf8');
    const edValue =
      /cli-ed\._domainkey[^(]*\( ([^)]*)\)/
        .exec(zone)?.[1]
        ?.match(/"[^"]*"/g)
        ?.map((s) => s.slice(1, -1))
        .join('') ?? '';
    await writeFile(publicKeys, `cli-ed._domainkey.example.com ${edValue}\n`);
    const config = join(directory, 'opendkim.conf');
    await writeFile(config, `Mode v\nSyslog no\nTestPublicKeys ${publicKeys}\n`);
    const workspace: Workspace = { directory, zoneFile, opendkimConfig: config, records: {} };
    const reports = await opendkimVerify(workspace, [join(out, 'a.eml')]);
    expect(opendkimPassed(reports.get(join(out, 'a.eml')) ?? '')).toBe(true);
  });

  it('exits 1 when a message has no passing signature', async () => {
    const unsigned = await herald(['verify', '--records', zoneFile, join(directory, 'a.eml')]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.stdout).toBe(
      `${join(directory, 'a.eml')}: - - none no_signature: no DKIM-Signature header field\n`,
    );
    const signed = await herald(
      [
        'sign',
        '--domain',
        'example.com',
        '--selector',
        'cli',
        '--key',
        join(directory, 'keys', 'cli.private.pem'),
      ],
      MESSAGE,
    );
    const tampered = signed.stdout.replace('Hello', 'Jello');
    const failed = await herald(['verify', '--records', zoneFile], tampered);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe(
      'stdin: example.com cli fail body_hash_mismatch: body hash does not match bh=\n',
    );
  });

  it('reports usage errors with status 2', async () => {
    const key = join(directory, 'keys', 'cli.private.pem');
    const cases: [string[], RegExp][] = [
      [
        [
          'sign',
          '--domain',
          'example.com',
          '--selector',
          's',
          '--key',
          join(directory, 'nope.pem'),
        ],
        /cannot read key file/,
      ],
      [
        [
          'sign',
          '--domain',
          'example.com',
          '--selector',
          's',
          '--key',
          key,
          join(directory, 'a.eml'),
          join(directory, 'b.eml'),
        ],
        /needs --out-dir/,
      ],
      [
        [
          'sign',
          '--domain',
          'example.com',
          '--selector',
          's',
          '--key',
          key,
          '--canonicalization',
          'loose',
        ],
        /simple or relaxed/,
      ],
      [
        [
          'sign',
          '--domain',
          'example.com',
          '--selector',
          's',
          '--key',
          key,
          '--algorithm',
          'ed25519-sha256',
        ],
        /needs an ed25519 key/,
      ],
      [['verify', '--records', join(directory, 'missing.zone')], /cannot read zone file/],
      [['verify', join(directory, 'missing.eml')], /cannot read/],
      [['frobnicate'], /unknown command/],
    ];
    for (const [args, pattern] of cases) {
      const outcome = await herald(args, MESSAGE);
      expect(outcome.code, args.join(' ')).toBe(2);
      expect(outcome.stderr, args.join(' ')).toMatch(pattern);
    }
  });

  it('exits 1 for a message without From', async () => {
    const key = join(directory, 'keys', 'cli.private.pem');
    const outcome = await herald([
      'sign',
      '--domain',
      'example.com',
      '--selector',
      'cli',
      '--key',
      key,
      join(directory, 'nofrom.eml'),
    ]);
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toMatch(/nofrom.eml: the message has no From header field/);
  });
});
