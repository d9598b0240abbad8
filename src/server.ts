/**
 * `startServer(config)`: composes Herald's running parts. It opens and migrates the store,
 * builds the resolver, the SRS rewriter and the DKIM keyring, then starts the delivery workers,
 * the SMTP listeners and the HTTP server, in that order, so nothing is accepted before the
 * parts that carry it out are ready.
 *
 * Shutdown (`stop()`, called on SIGTERM and SIGINT) runs in the reverse order: the listeners
 * stop accepting and finish the transactions in flight, the workers finish the deliveries in
 * flight, and the store closes last. Entries claimed but not finished when the process dies
 * keep their lease until it expires, then any worker claims them again, so a restart resumes
 * the queue where it stopped.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

import type { Logger } from 'pino';

import type { HeraldConfig } from './config/index.js';
import { startDeliveryWorkers } from './delivery/index.js';
import { createResolver } from './dns/index.js';
import { DkimKeyring, type KeyringLoadError } from './domains/keyring.js';
import type { ManagementContext } from './domains/context.js';
import { buildHttpApp } from './http/app.js';
import { Metrics } from './http/metrics.js';
import { createLogger } from './log/index.js';
import { startSmtpListeners } from './smtp/index.js';
import { SrsRewriter } from './srs/index.js';
import { openStore } from './store/index.js';
import type { Store } from './store/types.js';

/** How often the server checks the store for key changes made with the CLI, in milliseconds. */
const KEYRING_CHECK_INTERVAL_MS = 10_000;

export interface RunningServer {
  /** Addresses the listeners are bound to, `host:port`. */
  addresses: { mx: string; submission: string; http: string };
  store: Store;
  logger: Logger;
  /** Stops accepting, finishes work in flight and closes the store. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startServer(config: HeraldConfig, logger = createLogger(config)) {
  const store = await openStore(config);
  await store.migrate();

  const resolver = createResolver(config.dns);
  const srs = new SrsRewriter({
    domain: config.srs.domain,
    secrets: await loadSrsSecrets(config.srs.secretsFile, logger),
    hashLength: config.srs.hashLength,
    maxAgeDays: config.srs.maxAgeDays,
    tokenStore: storeTokens(store),
  });

  const { keyring: dkimKeys, errors } = await DkimKeyring.load(store);
  logKeyringErrors(logger, errors);
  const metrics = new Metrics();

  const delivery = startDeliveryWorkers({ store, resolver, config, logger, metrics });
  const smtp = await startSmtpListeners({
    store,
    config,
    logger,
    srs,
    dkimKeys,
    resolver,
    onEnqueued: (message: { origin: string; recipients: number }) => {
      metrics.messageReceived(message.origin, message.recipients);
      delivery.notify();
    },
  });

  const reloadKeys = async () => {
    const result = await dkimKeys.reloadIfChanged();
    if (result.reloaded) logger.info({ domains: dkimKeys.domains().length }, 'DKIM keys reloaded');
    logKeyringErrors(logger, result.errors);
  };
  const context: ManagementContext = {
    store,
    dataDir: config.dataDir,
    hostname: config.hostname,
    srsDomain: config.srs.domain,
  };
  const http = buildHttpApp({
    context,
    metrics,
    tokens: config.api.tokens,
    logger,
    onChange: reloadKeys,
    onRetry: () => delivery.notify(),
  });
  const httpAddress = await http.listen({ host: config.http.host, port: config.http.port });

  const keyringTimer = setInterval(() => {
    reloadKeys().catch((error: unknown) => logger.error({ err: error }, 'DKIM key reload failed'));
  }, KEYRING_CHECK_INTERVAL_MS);
  keyringTimer.unref();

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      logger.info('stopping: no new connections, finishing transactions in flight');
      clearInterval(keyringTimer);
      await smtp.close();
      await http.close();
      await delivery.stop();
      await store.close();
      logger.info('stopped');
    })();
    return stopping;
  };

  const addresses = {
    mx: smtp.addresses.mx,
    submission: smtp.addresses.submission,
    http: new URL(httpAddress).host,
  };
  logger.info({ ...addresses, hostname: config.hostname }, 'herald started');
  return { addresses, store, logger, stop } satisfies RunningServer;
}

/**
 * Reads the SRS secrets, one a line, the first signing and all verifying (so a secret can be
 * rotated by adding a new first line). A missing file is created with one random secret, mode
 * 0600, so a fresh install forwards without a setup step.
 */
async function loadSrsSecrets(path: string, logger: Logger): Promise<string[]> {
  try {
    const text = await readFile(path, 'utf8');
    const secrets = text
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    if (secrets.length === 0) throw new Error(`SRS secrets file ${path} contains no secret`);
    return secrets;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secret = randomBytes(24).toString('base64url');
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  logger.info({ path }, 'generated a new SRS secret');
  return [secret];
}

/** The SRS token store over the store's `srs_tokens` table, capped at `MAX_SRS_TOKENS` rows. */
function storeTokens(store: Store) {
  return {
    put: (token: string, original: string, expiresAt: Date) =>
      store.putSrsToken({ token, original, expiresAt }, MAX_SRS_TOKENS),
    get: (token: string) => store.getSrsToken(token, new Date()),
    // Expired rows go when the table is full (`putSrsToken` drops them first).
    purgeExpired: () => Promise.resolve(0),
  };
}

const MAX_SRS_TOKENS = 1_000_000;

function logKeyringErrors(logger: Logger, errors: KeyringLoadError[]): void {
  for (const { domain, selector, path, error } of errors) {
    logger.error(
      { domain, selector, path, err: error },
      'DKIM key not loaded: the domain signs without it',
    );
  }
}
