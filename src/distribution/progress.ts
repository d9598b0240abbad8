/**
 * Campaign progress: totals by recipient status, the sending rate over a sliding window and
 * the estimated time to finish. The same shape serves the API and the terminal progress bar.
 */
import type { RecipientCounts } from './types.js';

export interface CampaignProgress {
  total: number;
  queued: number;
  sent: number;
  delivered: number;
  deferred: number;
  bounced: number;
  complained: number;
  unsubscribed: number;
  suppressed: number;
  /** Subscribers not expanded yet. */
  remaining: number;
  /** Messages queued per second over the last minute. */
  rate: number;
  /** Seconds until every recipient is queued at the current rate; null when unknown. */
  etaSeconds: number | null;
}

/** Counts messages over a sliding window to measure the sending rate. */
export class RateMeter {
  /**
   * Counts per second of the window: the time of the first sample in that second and the
   * total. A send adds one sample per message, so a window of a minute at 1,000 messages a
   * second stays at 61 entries instead of 60,000.
   */
  private readonly seconds: { second: number; time: number; count: number }[] = [];

  constructor(private readonly windowMs = 60_000) {}

  add(count: number, now: number): void {
    const second = Math.floor(now / 1000);
    const last = this.seconds[this.seconds.length - 1];
    if (last && last.second === second) last.count += count;
    else this.seconds.push({ second, time: now, count });
    while (this.seconds.length > 0 && this.seconds[0]!.time < now - this.windowMs)
      this.seconds.shift();
  }

  /** Messages per second over the window ending at `now`. */
  perSecond(now: number): number {
    const recent = this.seconds.filter((entry) => entry.time >= now - this.windowMs);
    if (recent.length === 0) return 0;
    const total = recent.reduce((sum, entry) => sum + entry.count, 0);
    const span = Math.max(1000, now - recent[0]!.time);
    return (total * 1000) / span;
  }
}

/**
 * Builds the progress figures. `sent` counts every recipient handed to the queue (queued,
 * delivered, deferred or bounced since); suppressed recipients were never sent.
 */
export function computeProgress(
  counts: RecipientCounts,
  total: number,
  rate: number,
): CampaignProgress {
  const sent =
    counts.queued +
    counts.delivered +
    counts.deferred +
    counts.bounced +
    counts.complained +
    counts.unsubscribed;
  const handled = sent + counts.suppressed;
  const remaining = Math.max(0, total - handled);
  return {
    total,
    queued: counts.queued,
    sent,
    delivered: counts.delivered,
    deferred: counts.deferred,
    bounced: counts.bounced,
    complained: counts.complained,
    unsubscribed: counts.unsubscribed,
    suppressed: counts.suppressed,
    remaining,
    rate,
    etaSeconds: estimateSeconds(remaining, rate),
  };
}

/** Formats one line of a terminal progress bar, `[#####.....] 50% 500/1000 42.0/s ETA 12s`. */
export function formatProgressBar(progress: CampaignProgress, width = 30): string {
  const done = progress.total - progress.remaining;
  const fraction = progress.total === 0 ? 1 : done / progress.total;
  const filled = Math.round(fraction * width);
  const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
  const eta = progress.etaSeconds === null ? '?' : `${progress.etaSeconds}s`;
  return (
    `[${bar}] ${Math.floor(fraction * 100)}% ${done}/${progress.total} ` +
    `${progress.rate.toFixed(1)}/s ETA ${eta} ` +
    `delivered ${progress.delivered} deferred ${progress.deferred} bounced ${progress.bounced}`
  );
}

/** Seconds left at `rate` per second: 0 when done, null when the rate is still unknown. */
function estimateSeconds(remaining: number, rate: number): number | null {
  if (remaining === 0) return 0;
  if (rate <= 0) return null;
  return Math.ceil(remaining / rate);
}
