/**
 * Sending rate limits: one token bucket per campaign and one per destination domain. Domain
 * rules can ramp: a campaign starts at `startPerMinute` towards a domain and rises linearly
 * to `maxPerMinute` over `rampMinutes`, the gentle start that large receivers ask of new or
 * irregular senders.
 */

export interface DomainRule {
  /** A domain, or `*.example` for a domain and its subdomains, or `*` for every domain. */
  domain: string;
  maxPerMinute: number;
  startPerMinute?: number;
  rampMinutes?: number;
}

/** A token bucket holding at most one second of tokens (at least one). */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private perMinute: number,
    now: number,
  ) {
    this.tokens = this.capacity();
    this.updatedAt = now;
  }

  setRate(perMinute: number): void {
    this.perMinute = perMinute;
  }

  /** Takes one token and returns 0, or returns the milliseconds until one is available. */
  take(now: number): number {
    if (this.perMinute <= 0) return 0;
    const perMs = this.perMinute / 60_000;
    this.tokens = Math.min(this.capacity(), this.tokens + (now - this.updatedAt) * perMs);
    this.updatedAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - this.tokens) / perMs);
  }

  private capacity(): number {
    return Math.max(1, this.perMinute / 60);
  }
}

/** Per-destination limits of one campaign send. */
export class DomainThrottle {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly rules: DomainRule[],
    private readonly startedAt: number,
  ) {}

  /**
   * Returns the rule that governs `domain` and its rate now, or undefined when no rule does. The
   * sender reserves send times in the store with it, so a rule applies to all nodes together.
   */
  rateFor(domain: string, now: number): { rule: string; perMinute: number } | undefined {
    const rule = this.ruleFor(domain);
    if (!rule) return undefined;
    return { rule: rule.domain.toLowerCase(), perMinute: rampedRate(rule, now - this.startedAt) };
  }

  /** Takes a token for `domain`: 0 to send now, otherwise the milliseconds to wait. */
  take(domain: string, now: number): number {
    const rule = this.ruleFor(domain);
    if (!rule) return 0;
    const rate = rampedRate(rule, now - this.startedAt);
    let bucket = this.buckets.get(rule.domain);
    if (!bucket) {
      bucket = new TokenBucket(rate, now);
      this.buckets.set(rule.domain, bucket);
    }
    bucket.setRate(rate);
    return bucket.take(now);
  }

  /** Finds the most specific rule for a domain: an exact name, then the longest suffix, then `*`. */
  private ruleFor(domain: string): DomainRule | undefined {
    const name = domain.toLowerCase();
    let best: DomainRule | undefined;
    let bestLength = -1;
    for (const rule of this.rules) {
      const pattern = rule.domain.toLowerCase();
      let length = -1;
      if (pattern === name) length = Number.MAX_SAFE_INTEGER;
      else if (pattern === '*') length = 0;
      else if (pattern.startsWith('*.')) {
        const suffix = pattern.slice(2);
        if (name === suffix || name.endsWith(`.${suffix}`)) length = suffix.length;
      }
      if (length > bestLength) {
        best = rule;
        bestLength = length;
      }
    }
    return best;
  }
}

/** Messages per minute allowed `elapsedMs` after the campaign started. */
export function rampedRate(rule: DomainRule, elapsedMs: number): number {
  const start = rule.startPerMinute ?? rule.maxPerMinute;
  const ramp = (rule.rampMinutes ?? 0) * 60_000;
  if (ramp <= 0 || elapsedMs >= ramp) return rule.maxPerMinute;
  return start + ((rule.maxPerMinute - start) * Math.max(0, elapsedMs)) / ramp;
}
