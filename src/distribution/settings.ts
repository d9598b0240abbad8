/**
 * Settings of the distribution module, as the sender and the inbound handler take them. The
 * server and the CLI build them from the `distribution.*` rows of the configuration table;
 * tests start from the defaults, which match that table's.
 */
import type { HeraldConfig } from '../config/settings.js';
import type { DomainRule } from './throttle.js';
import { DEFAULT_RETURN_ADDRESSES, type ReturnAddresses } from './tokens.js';

export interface DistributionSettings {
  /** Base URL of Herald's HTTP listener as subscribers reach it, for unsubscribe links. */
  publicUrl: string;
  /** Subscribers expanded, rendered and signed per batch. */
  batchSize: number;
  /**
   * How long a sender keeps a claimed batch without renewing it, in milliseconds. A sender
   * renews its batches three times per lease; the batches of a sender that died are taken
   * over once this has passed.
   */
  batchLeaseMs: number;
  /** How often the campaign scheduler looks at the store, in milliseconds. */
  schedulerIntervalMs: number;
  /** Soft bounces after which an address is suppressed. */
  softBounceThreshold: number;
  /** Local part of the address that receives ARF complaint reports at each sending domain. */
  complaintLocalPart: string;
  returnAddresses: ReturnAddresses;
  /** Per-destination sending limits, with optional ramps. */
  domainRules: DomainRule[];
}

export const DEFAULT_DISTRIBUTION_SETTINGS: DistributionSettings = {
  publicUrl: 'http://127.0.0.1:8080',
  batchSize: 500,
  batchLeaseMs: 60_000,
  schedulerIntervalMs: 5_000,
  softBounceThreshold: 3,
  complaintLocalPart: 'fbl',
  returnAddresses: DEFAULT_RETURN_ADDRESSES,
  domainRules: [],
};

/** Builds the distribution settings from a loaded configuration (`distribution.*` rows). */
export function distributionSettings(config: HeraldConfig['distribution']): DistributionSettings {
  return {
    publicUrl: config.publicUrl,
    batchSize: config.batchSize,
    batchLeaseMs: config.batchLease,
    schedulerIntervalMs: config.schedulerInterval,
    softBounceThreshold: config.softBounceThreshold,
    complaintLocalPart: config.complaintLocalPart,
    returnAddresses: {
      bounceLocalPart: config.bounceLocalPart,
      unsubscribeLocalPart: config.unsubscribeLocalPart,
    },
    domainRules: config.domainRules,
  };
}
