/**
 * Everything the server needs to run distribution, built in one call: the distribution store
 * on the mail store's database (SQLite or PostgreSQL), the campaign sender, the service for
 * the API and admin pages, the inbound handler for bounce, unsubscribe and complaint
 * addresses, and the scheduler that starts and resumes campaigns. `close()` stops the
 * scheduler after the batch in flight and closes the distribution store; the caller owns the
 * mail store and the pool.
 */
import { openDistributionStore } from '../store/distribution-index.js';
import type { Store } from '../store/types.js';
import { FeedbackRecorder } from './feedback.js';
import { DistributionInbound } from './inbound.js';
import { startCampaignScheduler, type CampaignScheduler } from './scheduler.js';
import {
  CampaignSender,
  type BatchSigner,
  type SenderLogger,
  type SigningKeySource,
} from './sender.js';
import { DistributionService } from './service.js';
import { DEFAULT_DISTRIBUTION_SETTINGS, type DistributionSettings } from './settings.js';
import type { DistributionStore } from './types.js';

export interface DistributionRuntimeOptions {
  store: Store;
  /** `store.url` of the configuration: the distribution store opens the same database. */
  storeUrl: string;
  /** The DKIM keyring. */
  keys: SigningKeySource;
  /** The DKIM signing pool. */
  signer: BatchSigner;
  /** Wakes the delivery workers. */
  notify?: () => void;
  settings?: DistributionSettings;
  logger?: SenderLogger;
  /** Owner name of the sender's batch leases (the node name); one per process unless given. */
  owner?: string;
  /** Start the campaign scheduler (true unless set to false). */
  schedule?: boolean;
}

export interface DistributionRuntime {
  distribution: DistributionStore;
  service: DistributionService;
  sender: CampaignSender;
  recorder: FeedbackRecorder;
  inbound: DistributionInbound;
  scheduler?: CampaignScheduler;
  close(): Promise<void>;
}

export async function startDistribution(
  options: DistributionRuntimeOptions,
): Promise<DistributionRuntime> {
  const distribution = await openDistributionStore(options.storeUrl);
  const settings = options.settings ?? DEFAULT_DISTRIBUTION_SETTINGS;
  const recorder = new FeedbackRecorder(distribution, settings.softBounceThreshold);
  const sender = new CampaignSender({
    store: options.store,
    distribution,
    signer: options.signer,
    keys: options.keys,
    settings,
    recorder,
    notify: options.notify,
    logger: options.logger,
    owner: options.owner,
  });
  const service = new DistributionService({ store: options.store, distribution, sender });
  const inbound = await DistributionInbound.create(distribution, recorder, settings);
  const scheduler =
    options.schedule === false
      ? undefined
      : startCampaignScheduler({
          distribution,
          sender,
          logger: options.logger,
          intervalMs: settings.schedulerIntervalMs,
        });
  return {
    distribution,
    service,
    sender,
    recorder,
    inbound,
    scheduler,
    async close() {
      await scheduler?.stop();
      await distribution.close();
    },
  };
}
