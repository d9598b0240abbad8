/**
 * Entry point of the `herald` command. Each command group registers itself from its own
 * module and loads its implementation only when it runs, so `herald --help` starts fast.
 */
import { Command, CommanderError } from 'commander';

import { registerCommands } from './commands.js';
import { CliError, EXIT_USAGE } from './exit-codes.js';

// A reader that closes the pipe early (`herald queue list | head`) is not an error of ours:
// stop writing and exit quietly, as Unix tools do.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(0);
});

const program = new Command();
program
  .name('herald')
  .description('Herald: a mail server for hosted domains, with DKIM signing and SRS forwarding')
  .version('0.1.0')
  .showHelpAfterError()
  .exitOverride();

registerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version output arrive here as "errors" with exit code 0.
    process.exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE;
  } else if (error instanceof CliError) {
    process.stderr.write(`herald: ${error.message}\n`);
    process.exitCode = error.exitCode;
  } else {
    process.stderr.write(`herald: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
