/**
 * Settings of the distribution module. Each has a default that works on one machine.
 * NOTE: these are not yet rows of the configuration table in `src/config/`; callers pass
 * them in, and the CLI reads them from `HERALD_DISTRIBUTION_...` environment variables.
 */
import type { DomainRule } from './throttle.js';
import { DEFAULT_RETURN_ADDRESSES, type ReturnAddresses } from './tokens.js';

export interface DistributionSettings {
  /** Base URL of Herald's HTTP listener as subscribers reach it, for unsubscribe links. */
  publicUrl: string;
  /** Subscribers expanded, rendered and signed per batch. */
  batchSize: number;
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
  softBounceThreshold: 3,
  complaintLocalPart: 'fbl',
  returnAddresses: DEFAULT_RETURN_ADDRESSES,
  domainRules: [],
};

/** Reads overrides from the environment: `HERALD_DISTRIBUTION_PUBLIC_URL` and friends. */
export function distributionSettingsFromEnv(
  env: NodeJS.ProcessEnv,
  base: DistributionSettings = DEFAULT_DISTRIBUTION_SETTINGS,
): DistributionSettings {
  const settings = { ...base };
  if (env.HERALD_DISTRIBUTION_PUBLIC_URL) settings.publicUrl = env.HERALD_DISTRIBUTION_PUBLIC_URL;
  const batch = Number(env.HERALD_DISTRIBUTION_BATCH_SIZE);
  if (Number.isInteger(batch) && batch > 0) settings.batchSize = batch;
  const threshold = Number(env.HERALD_DISTRIBUTION_SOFT_BOUNCE_THRESHOLD);
  if (Number.isInteger(threshold) && threshold > 0) settings.softBounceThreshold = threshold;
  return settings;
}
