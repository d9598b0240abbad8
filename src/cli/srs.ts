/**
 * `herald srs forward|reverse`: rewrites sender addresses with SRS, or reverses SRS addresses,
 * from the command line. One output line per input address, in order: the result, or
 * `error REASON: MESSAGE`. Exit 0 when every address succeeded, 1 when any failed, 2 on a
 * usage error.
 */
import { readFile } from 'node:fs/promises';

import { InvalidArgumentError, Option, type Command } from 'commander';

import { CliError, EXIT_FAILURE, EXIT_USAGE } from './exit-codes.js';

interface CommonSrsOptions {
  secretFile: string;
  time?: Date;
}

interface ForwardOptions extends CommonSrsOptions {
  srsDomain: string;
  hashLength: number;
  hashAlphabet: 'base64url' | 'base64';
}

export function registerSrsCommands(program: Command): void {
  const srs = program
    .command('srs')
    .description('rewrite sender addresses with SRS (Sender Rewriting Scheme) and reverse them');

  srs
    .command('forward')
    .description('rewrite each sender ADDRESS into an SRS address at the SRS domain')
    .argument('<addresses...>', 'sender addresses to rewrite')
    .requiredOption('--srs-domain <domain>', 'domain of the rewritten addresses')
    .requiredOption('--secret-file <path>', 'file with one secret per line; the first signs')
    .option('--hash-length <n>', 'hash characters in the address, 1 to 27', parseHashLength, 4)
    .addOption(
      new Option('--hash-alphabet <alphabet>', 'hash alphabet; base64 matches postsrsd 1.x')
        .choices(['base64url', 'base64'])
        .default('base64url'),
    )
    .option('--time <iso>', 'rewrite as at this ISO 8601 time instead of now', parseTime)
    .action(async (addresses: string[], options: ForwardOptions) => {
      const { SrsRewriter } = await import('../srs/index.js');
      const secrets = await readSecrets(options.secretFile);
      const rewriter = createOrReject(
        () =>
          new SrsRewriter({
            domain: options.srsDomain,
            secrets,
            hashLength: options.hashLength,
            alphabet: options.hashAlphabet,
            now: clock(options.time),
          }),
      );
      let failed = false;
      for (const address of addresses) {
        const result = rewriter.forward(address);
        if (result.kind === 'error') {
          failed = true;
          writeLine(`error ${result.reason}: ${result.message}`);
        } else {
          writeLine(result.address);
        }
      }
      if (failed) process.exitCode = EXIT_FAILURE;
    });

  srs
    .command('reverse')
    .description('reverse each SRS ADDRESS to the address it was made from')
    .argument('<addresses...>', 'SRS addresses to reverse')
    .requiredOption('--secret-file <path>', 'file with one secret per line; all verify')
    .option('--time <iso>', 'check stamps as at this ISO 8601 time instead of now', parseTime)
    .action(async (addresses: string[], options: CommonSrsOptions) => {
      const { SrsRewriter } = await import('../srs/index.js');
      const secrets = await readSecrets(options.secretFile);
      const rewriter = createOrReject(() => new SrsRewriter({ secrets, now: clock(options.time) }));
      let failed = false;
      for (const address of addresses) {
        const result = rewriter.reverse(address);
        if (result.ok) {
          writeLine(result.address);
        } else {
          failed = true;
          writeLine(`error ${result.reason}: ${result.message}`);
        }
      }
      if (failed) process.exitCode = EXIT_FAILURE;
    });
}

function parseHashLength(value: string): number {
  const length = Number(value);
  if (!/^\d+$/.test(value) || length < 1 || length > 27) {
    throw new InvalidArgumentError('expected a whole number from 1 to 27.');
  }
  return length;
}

function parseTime(value: string): Date {
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) {
    throw new InvalidArgumentError('expected an ISO 8601 time such as 2026-01-31T12:00:00Z.');
  }
  return time;
}

/** Reads one secret per line, skipping blank lines; a missing or empty file is a usage error. */
async function readSecrets(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new CliError(`cannot read the secret file ${path}: ${reason}`, EXIT_USAGE);
  }
  const secrets = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  if (secrets.length === 0) {
    throw new CliError(`the secret file ${path} contains no secret`, EXIT_USAGE);
  }
  return secrets;
}

/** Turns an option the library rejects (an invalid SRS domain, say) into a usage error. */
function createOrReject<T>(create: () => T): T {
  try {
    return create();
  } catch (error) {
    if (error instanceof RangeError) throw new CliError(error.message, EXIT_USAGE);
    throw error;
  }
}

function clock(time: Date | undefined): () => Date {
  return time === undefined ? () => new Date() : () => time;
}

function writeLine(line: string): void {
  process.stdout.write(`${line}\n`);
}
