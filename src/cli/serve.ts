/** `herald serve`: runs the MX and submission listeners, delivery and the HTTP API. */
import type { Command } from 'commander';

import { CliError, EXIT_USAGE } from './exit-codes.js';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the mail server: MX, submission, delivery workers, HTTP API and /metrics')
    .option('-c, --config <file>', 'configuration file, YAML or TOML (default: built-in defaults)')
    .action(async (options: { config?: string }) => {
      const { loadConfig } = await import('../config/load.js');
      const { startServer } = await import('../server.js');
      let config;
      try {
        config = loadConfig(options.config, process.env);
      } catch (error) {
        throw new CliError((error as Error).message, EXIT_USAGE);
      }
      const server = await startServer(config);

      // SIGTERM and SIGINT stop gracefully; a second signal while stopping exits at once.
      let signalled = false;
      const onSignal = (signal: NodeJS.Signals) => {
        if (signalled) process.exit(1);
        signalled = true;
        server.logger.info({ signal }, 'signal received');
        server.stop().then(
          () => process.exit(0),
          (error: unknown) => {
            server.logger.error({ err: error }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      // SIGHUP reloads the DKIM keys at once, as after `herald domain add` with the CLI.
      process.on('SIGHUP', () => {
        server.reloadKeys().catch((error: unknown) => {
          server.logger.error({ err: error }, 'DKIM key reload failed');
        });
      });
    });
}
