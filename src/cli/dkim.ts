/**
 * `herald dkim keygen|sign|verify`: DKIM keys, signing and verification from the command line.
 *
 *   keygen  writes DIR/SELECTOR.private.pem (mode 0600) and prints the zone-file line.
 *   sign    signs FILEs (or stdin to stdout); with several files, writes each to --out-dir.
 *   verify  prints `SOURCE: DOMAIN SELECTOR VERDICT [CODE: REASON]` per signature; exits 0 when
 *           every message has a passing signature, 1 otherwise. --records reads a zone file so
 *           verification runs offline; without it the system resolver is asked.
 *
 * Exit status 2 is a usage error: a bad option, an unreadable file or key.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

import { InvalidArgumentError, Option, type Command } from 'commander';

import { CliError, EXIT_FAILURE, EXIT_USAGE } from './exit-codes.js';

interface KeygenOptions {
  domain: string;
  selector: string;
  algorithm: 'rsa' | 'ed25519';
  bits?: number;
  out: string;
}

interface SignCliOptions {
  domain: string;
  selector: string;
  key: string;
  algorithm?: 'rsa-sha256' | 'ed25519-sha256';
  canonicalization: string;
  headers?: string[];
  outDir?: string;
  time?: Date;
}

interface VerifyCliOptions {
  records?: string;
  time?: Date;
}

export function registerDkimCommands(program: Command): void {
  const dkim = program.command('dkim').description('generate DKIM keys, sign and verify messages');

  dkim
    .command('keygen')
    .description('generate a DKIM key pair and print the DNS record to publish')
    .requiredOption('--domain <domain>', 'the signing domain (d=)')
    .requiredOption('--selector <selector>', 'the selector (s=); the key file is named after it')
    .addOption(
      new Option('--algorithm <algorithm>', 'key algorithm')
        .choices(['rsa', 'ed25519'])
        .default('rsa'),
    )
    .option('--bits <n>', 'RSA key size in bits, 1024 to 4096 (default 2048)', parseBits)
    .requiredOption('--out <dir>', 'directory for SELECTOR.private.pem (created if missing)')
    .action(async (options: KeygenOptions) => {
      const keys = await import('../dkim/keys.js');
      if (options.algorithm === 'ed25519' && options.bits !== undefined) {
        throw new CliError('--bits applies only to --algorithm rsa', EXIT_USAGE);
      }
      const pair = await keys.generateKeyPair({ algorithm: options.algorithm, bits: options.bits });
      await mkdir(options.out, { recursive: true, mode: 0o700 });
      const path = join(options.out, `${options.selector}.private.pem`);
      try {
        await keys.writePrivateKey(path, pair.privateKey);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new CliError(
            `${path} already exists; remove it or choose another selector`,
            EXIT_FAILURE,
          );
        }
        throw error;
      }
      const value = keys.dkimRecordValue(pair.publicKey);
      process.stdout.write(keys.zoneFileRecord(options.selector, options.domain, value));
    });

  dkim
    .command('sign')
    .description('sign messages; reads stdin and writes stdout when no FILE is given')
    .argument('[files...]', 'message files to sign')
    .requiredOption('--domain <domain>', 'the signing domain (d=)')
    .requiredOption('--selector <selector>', 'the selector (s=)')
    .requiredOption('--key <file>', 'private key, PEM (PKCS#8, or PKCS#1 for RSA)')
    .addOption(
      new Option(
        '--algorithm <algorithm>',
        'signing algorithm (default: from the key type)',
      ).choices(['rsa-sha256', 'ed25519-sha256']),
    )
    .option(
      '--canonicalization <header/body>',
      'simple or relaxed, for header/body',
      parseCanonicalizationOption,
      'relaxed/relaxed',
    )
    .option(
      '--headers <list>',
      'header fields to sign, separated by commas or colons',
      parseHeaderList,
    )
    .option('--out-dir <dir>', 'write each signed message here under its own file name')
    .option('--time <iso>', 'sign as at this ISO 8601 time instead of now', parseTime)
    .action(async (files: string[], options: SignCliOptions) => {
      await runSign(files, options);
    });

  dkim
    .command('verify')
    .description('verify the DKIM signatures of messages; reads stdin when no FILE is given')
    .argument('[files...]', 'message files to verify')
    .option('--records <zonefile>', 'read key records from this BIND zone file instead of DNS')
    .option('--time <iso>', 'verify as at this ISO 8601 time instead of now', parseTime)
    .action(async (files: string[], options: VerifyCliOptions) => {
      await runVerify(files, options);
    });
}

async function runSign(files: string[], options: SignCliOptions): Promise<void> {
  const { DkimSignError, readPrivateKey, signMessage } = await import('../dkim/index.js');
  if (files.length > 1 && options.outDir === undefined) {
    throw new CliError('signing several files needs --out-dir', EXIT_USAGE);
  }
  const privateKey = await readPrivateKey(options.key).catch((error: Error) => {
    throw new CliError(error.message, EXIT_USAGE);
  });
  const signOptions = {
    time: options.time,
    signatures: [
      {
        domain: options.domain,
        selector: options.selector,
        privateKey,
        algorithm: options.algorithm,
        canonicalization:
          options.canonicalization as `${'simple' | 'relaxed'}/${'simple' | 'relaxed'}`,
        headers: options.headers,
      },
    ],
  };
  if (options.outDir !== undefined) await mkdir(options.outDir, { recursive: true });
  const sources = files.length === 0 ? ['-'] : files;
  let failed = false;
  for (const source of sources) {
    const message = await readInput(source);
    let signed: Buffer;
    try {
      signed = signMessage(message, signOptions);
    } catch (error) {
      if (!(error instanceof DkimSignError)) throw error;
      // Option problems fail every file alike, so they are usage errors; message problems are not.
      if (error.kind === 'options') throw new CliError(error.message, EXIT_USAGE);
      process.stderr.write(`herald: ${displayName(source)}: ${error.message}\n`);
      failed = true;
      continue;
    }
    if (options.outDir === undefined) process.stdout.write(signed);
    else
      await writeFile(
        join(options.outDir, source === '-' ? 'stdin.eml' : basename(source)),
        signed,
      );
  }
  if (failed) process.exitCode = EXIT_FAILURE;
}

async function runVerify(files: string[], options: VerifyCliOptions): Promise<void> {
  const { createKeyCache, verifyMessage } = await import('../dkim/index.js');
  const lookupTxt =
    options.records === undefined ? await systemLookup() : await zoneLookup(options.records);
  const keyCache = createKeyCache();
  const sources = files.length === 0 ? ['-'] : files;
  let allPassed = true;
  for (const source of sources) {
    const message = await readInput(source);
    const results = await verifyMessage(message, { lookupTxt, keyCache, now: options.time });
    for (const result of results) {
      const reason = result.code === undefined ? '' : ` ${result.code}: ${result.reason ?? ''}`;
      const line = `${displayName(source)}: ${result.domain ?? '-'} ${result.selector ?? '-'} ${result.result}${reason}`;
      process.stdout.write(`${line}\n`);
    }
    if (!results.some((result) => result.result === 'pass')) allPassed = false;
  }
  if (!allPassed) process.exitCode = EXIT_FAILURE;
}

async function systemLookup(): Promise<(name: string) => Promise<string[][]>> {
  const { Resolver } = await import('node:dns/promises');
  const resolver = new Resolver({ timeout: 5000, tries: 2 });
  return (name) => resolver.resolveTxt(name);
}

async function zoneLookup(path: string): Promise<(name: string) => Promise<string[][]>> {
  const { createZoneLookup, parseZoneFile } = await import('../dkim/zone.js');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CliError(
      `cannot read zone file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      EXIT_USAGE,
    );
  }
  const zone = parseZoneFile(text);
  for (const problem of zone.errors) process.stderr.write(`herald: ${path}: ${problem}\n`);
  return createZoneLookup(zone);
}

async function readInput(source: string): Promise<Buffer> {
  if (source === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
  try {
    return await readFile(source);
  } catch (error) {
    throw new CliError(
      `cannot read ${source}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      EXIT_USAGE,
    );
  }
}

function displayName(source: string): string {
  return source === '-' ? 'stdin' : source;
}

function parseBits(value: string): number {
  const bits = Number(value);
  if (!Number.isInteger(bits) || bits < 1024 || bits > 4096) {
    throw new InvalidArgumentError('use a whole number of bits from 1024 to 4096');
  }
  return bits;
}

function parseCanonicalizationOption(value: string): string {
  if (!/^(simple|relaxed)\/(simple|relaxed)$/.test(value)) {
    throw new InvalidArgumentError('use header/body, each simple or relaxed, e.g. relaxed/relaxed');
  }
  return value;
}

function parseHeaderList(value: string): string[] {
  const names = value
    .split(/[,:]/)
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (!names.some((name) => name.toLowerCase() === 'from')) {
    throw new InvalidArgumentError('the list must include From (RFC 6376 section 5.4)');
  }
  return names;
}

function parseTime(value: string): Date {
  const time = new Date(value);
  if (Number.isNaN(time.getTime()))
    throw new InvalidArgumentError('use an ISO 8601 time, e.g. 2026-01-31T12:00:00Z');
  return time;
}
