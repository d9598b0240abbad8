/**
 * `startServer(config)`: composes Herald's running parts. It opens and migrates the store and
 * builds the resolver, the SRS rewriter and the DKIM keyring. Then it starts the delivery
 * workers, the SMTP listeners and the HTTP server in that order, so nothing is accepted before
 * the parts that carry it out are ready.
 *
 * Shutdown (`stop()`, called on SIGTERM and SIGINT) runs in the reverse order: the listeners
 * stop accepting and finish the transactions in flight, the workers finish the deliveries in
 * flight, and the store closes last. Entries claimed but not finished when the process dies
 * keep their lease until it expires, then any worker claims them again, so a restart resumes
 * the queue where it stopped.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

import type { Logger } from 'pino';

import type { HeraldConfig } from './config/settings.js';
import { startDeliveryWorkers } from './delivery/worker.js';
import { createSigningPool } from './dkim/index.js';
import { startDistribution, type DistributionRuntime } from './distribution/runtime.js';
import { distributionSettings } from './distribution/settings.js';
import { createCheckLookups } from './dns/check.js';
import { createResolver } from './dns/index.js';
import { DkimKeyring, type KeyringLoadError } from './domains/keyring.js';
import type { ManagementContext } from './domains/context.js';
import { buildHttpApp } from './http/app.js';
import { Metrics } from './http/metrics.js';
import { createLogger } from './log/index.js';
import { SrsRouting, StoreTokenStore } from './forwarding/index.js';
import { startSmtpListeners } from './smtp/index.js';
import { openStore } from './store/index.js';
import type { Store } from './store/types.js';

/** How often the server checks the store for key changes made with the CLI, in milliseconds. */
const KEYRING_CHECK_INTERVAL_MS = 10_000;
/** How often finished messages older than `delivery.retainFinished` are purged, in milliseconds. */
const PURGE_INTERVAL_MS = 10 * 60_000;

export interface RunningServer {
  /** Addresses the listeners are bound to, `host:port`. */
  addresses: { mx: string; submission: string; http: string };
  store: Store;
  logger: Logger;
  /** Stops accepting, finishes work in flight and closes the store. Safe to call twice. */
  stop(): Promise<void>;
  /** Reloads the DKIM keys when they changed in the store (SIGHUP). */
  reloadKeys(): Promise<void>;
}

export async function startServer(
  config: HeraldConfig,
  logger: Logger = createLogger({ level: config.log.level }),
): Promise<RunningServer> {
  const store = await openStore({ url: config.store.url });
  // Parts started so far, closed in reverse order when a later part fails to start, so a
  // failed start (a port in use, an unreadable key) exits instead of hanging on open handles.
  const started: Array<() => Promise<unknown>> = [() => store.close()];
  const undo = async (error: unknown): Promise<never> => {
    for (const close of started.reverse()) await close().catch(() => undefined);
    throw error;
  };

  const resolver = createResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeout });
  const srs = new SrsRouting({
    domain: config.srs.domain,
    secrets: await loadSrsSecrets(config.srs.secretsFile, logger).catch(undo),
    hashLength: config.srs.hashLength,
    maxAgeDays: config.srs.maxAgeDays,
    tokenStore: new StoreTokenStore(store, config.srs.maxTokens),
  });

  const { keyring: dkimKeys, errors } = await DkimKeyring.load(store).catch(undo);
  logKeyringErrors(logger, errors);
  await releaseDeadLeases(store, config.hostname, logger).catch(undo);
  const metrics = new Metrics();

  const delivery = startDeliveryWorkers({
    store,
    resolver,
    config,
    logger,
    onOutcome: (_entry, outcome) => metrics.deliveryAttempted(outcome.status),
  });
  started.push(() => delivery.stop());
  // Signing runs on worker threads, so submission and campaigns use every core.
  const signer = createSigningPool();
  started.push(() => signer.close());
  const distribution = await startCampaigns(
    config,
    store,
    dkimKeys,
    signer,
    () => delivery.notify(),
    logger,
    delivery.owner,
  ).catch(undo);
  started.push(() => distribution.close());

  const smtp = await startSmtpListeners({
    store,
    config,
    logger,
    srs,
    dkimKeys,
    resolver,
    signer,
    distribution: distribution?.inbound,
    onEnqueued: (message) => {
      metrics.messageReceived(message.origin, message.recipients);
      delivery.notify();
    },
  }).catch(undo);
  started.push(() => smtp.close(0));

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
    distribution: distribution && {
      service: distribution.service,
      distribution: distribution.distribution,
      recorder: distribution.recorder,
      adminTokens: config.api.tokens,
      onCampaignStarted: () => distribution.scheduler?.wake(),
    },
    admin: {
      context,
      distribution: distribution?.service,
      onCampaignStarted: () => distribution?.scheduler?.wake(),
      lookups: createCheckLookups({ servers: config.dns.servers, timeoutMs: config.dns.timeout }),
      tokens: config.api.tokens,
      onChange: reloadKeys,
      onRetry: () => delivery.notify(),
      node: delivery.owner,
    },
  });
  started.push(() => http.close());
  const httpAddress = await http
    .listen({ host: config.http.host, port: config.http.port })
    .catch(undo);

  const keyringTimer = setInterval(() => {
    reloadKeys().catch((error: unknown) => logger.error({ err: error }, 'DKIM key reload failed'));
  }, KEYRING_CHECK_INTERVAL_MS);
  keyringTimer.unref();

  const purge = async () => {
    const purged = await store.purgeFinished(new Date(Date.now() - config.delivery.retainFinished));
    if (purged > 0) logger.info({ purged }, 'purged finished messages from the store');
  };
  const purgeTimer = setInterval(() => {
    purge().catch((error: unknown) => logger.error({ err: error }, 'purging finished mail failed'));
  }, PURGE_INTERVAL_MS);
  purgeTimer.unref();

  // Another node's enqueue (PostgreSQL), or another process's on the same SQLite file (a
  // `herald campaign send`), wakes this node's idle workers at once.
  const unwatchQueue = store.watchQueue?.(() => delivery.notify());

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      logger.info('stopping: no new connections, finishing transactions in flight');
      clearInterval(keyringTimer);
      clearInterval(purgeTimer);
      unwatchQueue?.();
      await smtp.close();
      await http.close();
      await distribution?.close();
      await delivery.stop();
      await signer.close();
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
  return { addresses, store, logger, stop, reloadKeys };
}

/**
 * Reads the SRS secrets, one a line, the first signing and all verifying (so a secret can be
 * rotated by adding a new first line). A missing file is created with one random secret, mode
 * 0600, so a fresh install forwards without a setup step. Nodes that share the file and start
 * together all end up with the secret that the first of them wrote.
 */
export async function loadSrsSecrets(path: string, logger: Logger): Promise<string[]> {
  const existing = await readSrsSecrets(path);
  if (existing) return existing;

  // The secret is written whole to a file of this process, then linked into place: link fails
  // when the name exists, so a node racing this one never reads a half-written file.
  const secret = randomBytes(24).toString('base64url');
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const draft = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(draft, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(draft, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const written = await readSrsSecrets(path);
    if (!written) throw new Error(`SRS secrets file ${path} vanished while it was read`);
    return written;
  } finally {
    await unlink(draft);
  }
  logger.info({ path }, 'generated a new SRS secret');
  return [secret];
}

/** Reads the secrets in the file; resolves to undefined when the file does not exist. */
async function readSrsSecrets(path: string): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const secrets = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  if (secrets.length === 0) throw new Error(`SRS secrets file ${path} contains no secret`);
  return secrets;
}

/**
 * Starts lists and campaigns on the mail store's database, SQLite or PostgreSQL. With
 * PostgreSQL every node runs the campaign scheduler on the shared tables.
 */
async function startCampaigns(
  config: HeraldConfig,
  store: Store,
  keys: DkimKeyring,
  signer: ReturnType<typeof createSigningPool>,
  notify: () => void,
  logger: Logger,
  owner: string,
): Promise<DistributionRuntime> {
  return startDistribution({
    store,
    storeUrl: config.store.url,
    keys,
    signer,
    notify,
    settings: distributionSettings(config.distribution),
    logger: logger.child({ component: 'distribution' }),
    owner,
  });
}

/**
 * After a crash, the entries the dead process was delivering stay leased to it until the lease
 * runs out (`delivery.leaseTime`, 10 minutes by default). On SQLite every lease owner ran on
 * this machine, so the owners named after this host whose process is gone are freed at once.
 */
async function releaseDeadLeases(store: Store, hostname: string, logger: Logger): Promise<void> {
  if (!store.releaseLeasesOf) return;
  const released = await store.releaseLeasesOf((owner) => {
    const [host, pidText] = owner.split(':');
    const pid = Number(pidText);
    return host === hostname && Number.isInteger(pid) && pid !== process.pid && !processAlive(pid);
  });
  if (released > 0) {
    logger.warn({ entries: released }, 'freed the delivery leases of a process that stopped');
  }
}

/** True when a process with this PID exists (signal 0 checks without sending anything). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function logKeyringErrors(logger: Logger, errors: KeyringLoadError[]): void {
  for (const { domain, selector, path, error } of errors) {
    logger.error(
      { domain, selector, path, err: error },
      'DKIM key not loaded: the domain signs without it',
    );
  }
}
