/** Exit status when every input succeeded. */
export const EXIT_OK = 0;
/** Exit status when at least one input failed (a failed verification, a failed reverse). */
export const EXIT_FAILURE = 1;
/** Exit status for a usage error: an unknown option, a missing argument, an unreadable file. */
export const EXIT_USAGE = 2;

/** An error that the CLI reports on stderr and turns into the given exit status. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_USAGE,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
