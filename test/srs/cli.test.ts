/**
 * `herald srs forward|reverse` run as a real process from the TypeScript sources, checking the
 * output lines and the exit status (0 all succeeded, 1 any failed, 2 usage error).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Postsrsd } from './postsrsd.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TIME = '2026-12-03T12:00:00Z';

interface Run {
  status: number;
  stdout: string[];
  stderr: string;
}

function herald(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', ...args],
      { cwd: ROOT, timeout: 30_000 },
      (error, stdout, stderr) => {
        let status = 0;
        if (error !== null) status = typeof error.code === 'number' ? error.code : -1;
        resolve({ status, stdout: stdout.split('\n').filter((line) => line !== ''), stderr });
      },
    );
  });
}

describe('herald srs', () => {
  let directory: string;
  let secretFile: string;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'herald-srs-cli-'));
    secretFile = join(directory, 'secrets');
    // The first line signs; blank lines are skipped.
    await writeFile(secretFile, 'testsecret\n\nolder\n');
  });

  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('forward prints one line per address and exits 0', async () => {
    const run = await herald([
      'srs',
      'forward',
      '--srs-domain',
      'srs.example',
      '--secret-file',
      secretFile,
      '--hash-alphabet',
      'base64',
      '--time',
      TIME,
      'user@example.com',
      'xy@a.com',
      'someone@srs.example',
    ]);
    expect(run.status).toBe(0);
    // The first hash is what postsrsd 1.10 wrote for this sender, secret and day.
    expect(run.stdout).toEqual([
      'SRS0=nN3C=JW=example.com=user@srs.example',
      expect.stringMatching(/^SRS0=.{4}=JW=a\.com=xy@srs\.example$/),
      'someone@srs.example',
    ]);
  });

  it('forward honours the hash length and exits 1 on a bad address', async () => {
    const run = await herald([
      'srs',
      'forward',
      '--srs-domain=srs.example',
      `--secret-file=${secretFile}`,
      '--hash-length=8',
      `--time=${TIME}`,
      'user@example.com',
      'not-an-address',
    ]);
    expect(run.status).toBe(1);
    expect(run.stdout[0]).toMatch(/^SRS0=nN3C.{4}=JW=example\.com=user@srs\.example$/);
    expect(run.stdout[1]).toBe('error malformed: not a valid address: not-an-address');
  });

  it('reverse prints the address or the reason and exits 1 on any failure', async () => {
    const run = await herald([
      'srs',
      'reverse',
      '--secret-file',
      secretFile,
      '--time',
      '2026-12-26T12:00:00Z',
      'SRS0=nN3C=JW=example.com=user@srs.example',
      'srs0=nn3c=jw=example.com=user@srs.example',
      'user@srs.example',
    ]);
    expect(run.status).toBe(1);
    expect(run.stdout).toEqual([
      expect.stringMatching(/^error expired: the address is 23 days old/),
      expect.stringMatching(/^error expired: /),
      'error not-srs: not an SRS address: user@srs.example',
    ]);
  });

  it('reverse exits 0 when every address reverses', async () => {
    const run = await herald([
      'srs',
      'reverse',
      '--secret-file',
      secretFile,
      '--time',
      TIME,
      'SRS0=nN3C=JW=example.com=user@srs.example',
      'SRS1=YDiH=other.com==abcd=XY=ex.com=u@srs.example',
    ]);
    expect(run).toEqual({
      status: 0,
      stdout: ['user@example.com', 'SRS0=abcd=XY=ex.com=u@other.com'],
      stderr: '',
    });
  });

  it.each([
    [['srs', 'forward', '--secret-file', 'unused', 'a@b.example']],
    [['srs', 'forward', '--srs-domain', 'srs.example', 'a@b.example']],
    [['srs', 'reverse', '--secret-file', 'unused']],
    [['srs', 'reverse', '--secret-file', '/nonexistent/secrets', 'SRS0=a=b=c=d@e']],
    [['srs', 'reverse', '--time', 'yesterday', '--secret-file', 'x', 'a@b']],
    [['srs', 'forward', '--srs-domain', 'd.example', '--hash-length', '30', '--secret-file', 'x']],
    [['srs', 'forward', '--hash-alphabet', 'hex', '--srs-domain', 'd', '--secret-file', 'x', 'a']],
    [['srs', 'frobnicate']],
  ])('exits 2 on a usage error: %j', async (args) => {
    const run = await herald(args);
    expect(run.status).toBe(2);
    expect(run.stdout).toEqual([]);
    expect(run.stderr).not.toBe('');
  });

  it('exits 2 for an invalid SRS domain', async () => {
    const run = await herald([
      'srs',
      'forward',
      '--srs-domain',
      'bad domain',
      '--secret-file',
      secretFile,
      'a@b.example',
    ]);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('invalid SRS domain');
  });

  it('forward output reverses in postsrsd, and postsrsd output in reverse', async () => {
    const postsrsd = await Postsrsd.start({
      domain: 'srs.example',
      secrets: ['testsecret', 'older'],
    });
    try {
      const forwarded = await herald([
        'srs',
        'forward',
        '--srs-domain',
        'srs.example',
        '--secret-file',
        secretFile,
        '--hash-alphabet',
        'base64',
        'cli@example.com',
      ]);
      expect(forwarded.status).toBe(0);
      expect(await postsrsd.reverse(forwarded.stdout[0]!)).toEqual({
        code: 200,
        value: 'cli@example.com',
      });

      const theirs = await postsrsd.forward('back@example.org');
      const reversed = await herald(['srs', 'reverse', '--secret-file', secretFile, theirs.value]);
      expect(reversed.status).toBe(0);
      expect(reversed.stdout).toEqual(['back@example.org']);
    } finally {
      await postsrsd.stop();
    }
  });
});
