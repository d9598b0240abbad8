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
  /**
   * How long a sender holds a claimed batch without renewing it, in milliseconds. A sender
   * renews its batches three times per lease; the batches of a sender that died are taken
   * over once this has passed.
   */
  batchLeaseMs: number;
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
  const lease = Number(env.HERALD_DISTRIBUTION_BATCH_LEASE_MS);
  if (Number.isInteger(lease) && lease > 0) settings.batchLeaseMs = lease;
  const threshold = Number(env.HERALD_DISTRIBUTION_SOFT_BOUNCE_THRESHOLD);
  if (Number.isInteger(threshold) && threshold > 0) settings.softBounceThreshold = threshold;
  if (env.HERALD_DISTRIBUTION_DOMAIN_RULES) {
    settings.domainRules = parseDomainRules(env.HERALD_DISTRIBUTION_DOMAIN_RULES);
  }
  return settings;
}

/**
 * Parses per-domain limits given as JSON, for example
 * `[{"domain": "*.gmail.com", "startPerMinute": 100, "maxPerMinute": 1000, "rampMinutes": 60}]`.
 */
export function parseDomainRules(text: string): DomainRule[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(
      `HERALD_DISTRIBUTION_DOMAIN_RULES is not valid JSON: ${(error as Error).message}`,
    );
  }
  if (!Array.isArray(value))
    throw new Error('HERALD_DISTRIBUTION_DOMAIN_RULES must be a JSON array of rules');
  return value.map((item: unknown, index) => {
    const rule = item as Partial<Record<keyof DomainRule, unknown>>;
    const valid =
      typeof rule === 'object' &&
      rule !== null &&
      typeof rule.domain === 'string' &&
      isRate(rule.maxPerMinute) &&
      (rule.startPerMinute === undefined || isRate(rule.startPerMinute)) &&
      (rule.rampMinutes === undefined || isRate(rule.rampMinutes));
    if (!valid) {
      throw new Error(
        `HERALD_DISTRIBUTION_DOMAIN_RULES rule ${index}: expected {domain, maxPerMinute, startPerMinute?, rampMinutes?} with numbers >= 0`,
      );
    }
    return rule as DomainRule;
  });
}

function isRate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}
