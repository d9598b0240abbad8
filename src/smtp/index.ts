/**
 * The SMTP listeners of `herald serve`: MX (inbound mail for hosted domains and SRS bounces)
 * and submission (authenticated users, signed). `startSmtpListeners` loads or generates the
 * TLS certificate, binds both ports and returns their addresses and a `close` for shutdown.
 */
import type { Server } from 'node:net';

import type { Logger } from 'pino';
import type { SMTPServer } from 'smtp-server';

import type { HeraldConfig } from '../config/index.js';
import type { SrsSource, TxtLookup } from '../forwarding/index.js';
import type { Store } from '../store/types.js';
import { InboundListener, type DistributionAddresses } from './inbound.js';
import { DataBudget } from './limits.js';
import type { ListenerLimits } from './session.js';
import { SubmissionListener } from './submission.js';
import { loadTlsMaterial } from './tls.js';
import type { DkimKeySource, EnqueuedListener, MessageSigner } from './types.js';

export {
  InboundListener,
  DEFAULT_SRS_REPLIES_PER_HOUR,
  type DistributionAddresses,
  type InboundOptions,
} from './inbound.js';
export { SubmissionListener, type SubmissionOptions, type SubmissionUser } from './submission.js';
export { loadTlsMaterial, type TlsMaterial, type TlsSettings } from './tls.js';
export { REPLIES, SmtpReplyError } from './replies.js';
export type { ListenerLimits } from './session.js';
export {
  IN_PROCESS_SIGNER,
  type DkimKeySource,
  type EnqueuedListener,
  type EnqueuedMessage,
  type MessageSigner,
  type TlsOptions,
} from './types.js';

export interface SmtpListenerOptions {
  store: Store;
  config: HeraldConfig;
  logger: Logger;
  srs: SrsSource;
  dkimKeys: DkimKeySource;
  /** The resolver for DKIM keys and DMARC records; Herald's DNS resolver fits. */
  resolver: { resolveTxt: TxtLookup };
  onEnqueued?: EnqueuedListener;
  /**
   * Signs submitted messages and From-rewritten forwards. Pass a `createSigningPool` pool to
   * sign on other cores; signing runs in process when absent.
   */
  signer?: MessageSigner;
  /** Campaign bounce, unsubscribe and complaint addresses, handled by the MX listener. */
  distribution?: DistributionAddresses;
}

export interface BoundAddress {
  host: string;
  port: number;
}

export interface SmtpListeners {
  mx: BoundAddress;
  submission: BoundAddress;
  /** The same addresses as `host:port` strings, for logs and clients. */
  addresses: { mx: string; submission: string };
  /**
   * Stops both listeners: no new connections, idle sessions closed with 421, messages in DATA
   * finished and committed. Sessions still open after `timeoutMs` (default 30 s) are cut.
   */
  close(timeoutMs?: number): Promise<void>;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 30_000;

/** Turns the `limits` settings into what the listeners check. */
export function listenerLimits(config: HeraldConfig): ListenerLimits {
  const { limits } = config;
  return {
    maxMessageSize: limits.maxMessageSize,
    maxLineLength: limits.maxLineLength,
    maxHeaderSize: limits.maxHeaderSize,
    maxRecipients: limits.maxRecipients,
    maxConnectionsPerClient: limits.maxConnectionsPerClient,
    commandsPerMinute: limits.commandsPerMinute,
    idleTimeoutMs: limits.idleTimeout,
    maxConnections: limits.maxConnections,
    maxDataInFlight: limits.maxDataInFlight,
    dataTimeoutMs: limits.dataTimeout,
    authFailuresPerWindow: limits.authFailuresPerWindow,
    authFailureWindowMs: limits.authFailureWindow,
    srsNullSendersPerHour: limits.srsNullSendersPerHour,
  };
}

/** Starts the MX and submission listeners on the configured addresses. */
export async function startSmtpListeners(options: SmtpListenerOptions): Promise<SmtpListeners> {
  const { config, logger } = options;
  const tls = await loadTlsMaterial(config.tls, config.dataDir, config.hostname);
  logger.info({ source: tls.source, cert: tls.certPath }, 'TLS certificate loaded');

  const limits = listenerLimits(config);
  // One budget for both listeners, because they share the process's memory.
  const dataBudget = new DataBudget(limits.maxDataInFlight);
  const common = {
    dataBudget,
    store: options.store,
    hostname: config.hostname,
    limits,
    tls: { cert: tls.cert, key: tls.key },
    dkimKeys: options.dkimKeys,
    onEnqueued: options.onEnqueued,
    signer: options.signer,
  };
  const inbound = new InboundListener({
    ...common,
    logger: logger.child({ listener: 'mx' }),
    srs: options.srs,
    lookupTxt: (name) => options.resolver.resolveTxt(name),
    distribution: options.distribution,
    postmaster: config.postmaster,
  });
  const submission = new SubmissionListener({
    ...common,
    logger: logger.child({ listener: 'submission' }),
  });

  const mx = await listen(inbound.server, config.smtp.mx.host, config.smtp.mx.port);
  let submissionAddress: BoundAddress;
  try {
    submissionAddress = await listen(
      submission.server,
      config.smtp.submission.host,
      config.smtp.submission.port,
    );
  } catch (error) {
    await inbound.close(0);
    throw error;
  }
  logger.info({ mx, submission: submissionAddress }, 'SMTP listeners started');

  return {
    mx,
    submission: submissionAddress,
    addresses: { mx: formatAddress(mx), submission: formatAddress(submissionAddress) },
    async close(timeoutMs = DEFAULT_CLOSE_TIMEOUT_MS) {
      await Promise.all([inbound.close(timeoutMs), submission.close(timeoutMs)]);
      logger.info('SMTP listeners stopped');
    },
  };
}

/** Binds a listener; rejects with the socket error (EADDRINUSE, EACCES) when binding fails. */
function listen(server: SMTPServer, host: string, port: number): Promise<BoundAddress> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) =>
      reject(new Error(`cannot listen on ${host}:${port}: ${error.message}`));
    server.once('error', onError);
    const net: Server = server.listen(port, host, () => {
      server.off('error', onError);
      const address = net.address();
      resolve({ host, port: typeof address === 'object' && address ? address.port : port });
    });
  });
}

function formatAddress(address: BoundAddress): string {
  return address.host.includes(':')
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}
