/**
 * Counters and gauges for `/metrics`, rendered in the Prometheus text exposition format
 * (version 0.0.4). Counters live in memory and restart at zero with the process, which
 * Prometheus's `rate()` handles. Queue sizes are read from the store at each scrape, so they
 * are right for the whole cluster and survive restarts.
 */
import type { QueueStatus, Store } from '../store/types.js';

type Labels = Record<string, string>;

interface Family {
  help: string;
  type: 'counter' | 'gauge';
  values: Map<string, { labels: Labels; value: number }>;
}

export class Metrics {
  private readonly families = new Map<string, Family>();
  private readonly startedAt = Date.now();

  /** Adds `amount` to a counter, creating it and its label set on first use. */
  increment(name: string, help: string, labels: Labels = {}, amount = 1): void {
    const entry = this.entry(name, help, 'counter', labels);
    entry.value += amount;
  }

  /** Sets a gauge. */
  set(name: string, help: string, labels: Labels, value: number): void {
    this.entry(name, help, 'gauge', labels).value = value;
  }

  /** Records an accepted message and its recipients. */
  messageReceived(origin: string, recipients: number): void {
    this.increment('herald_messages_received_total', 'Messages accepted and queued.', { origin });
    this.increment(
      'herald_recipients_received_total',
      'Queue entries created by accepted messages.',
      { origin },
      recipients,
    );
  }

  /** Records the verdict of one delivery attempt. */
  deliveryAttempted(result: 'delivered' | 'deferred' | 'failed'): void {
    this.increment('herald_deliveries_total', 'Delivery attempts by verdict.', { result });
  }

  /** Renders every family, refreshing the store and process gauges first. */
  async render(store: Store): Promise<string> {
    await this.refreshGauges(store);
    const lines: string[] = [];
    for (const [name, family] of [...this.families].sort(([a], [b]) => a.localeCompare(b))) {
      lines.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`);
      for (const { labels, value } of family.values.values()) {
        lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
      }
    }
    return `${lines.join('\n')}\n`;
  }

  private async refreshGauges(store: Store): Promise<void> {
    const counts: Record<QueueStatus, number> = await store.countByStatus();
    for (const [status, count] of Object.entries(counts)) {
      this.set('herald_queue_entries', 'Queue entries by status.', { status }, count);
    }
    // Only a shared (PostgreSQL) store knows the other nodes; a gauge per node says whether it
    // is alive and how many entries it holds under lease.
    const nodes = (await store.listNodes?.()) ?? [];
    for (const node of nodes) {
      const labels = { node: node.name };
      this.set(
        'herald_node_up',
        'Whether a node renewed its work recently (1) or not (0).',
        labels,
        node.alive ? 1 : 0,
      );
      this.set(
        'herald_node_leased_entries',
        'Queue entries held under lease by a node.',
        labels,
        node.leasedEntries,
      );
    }
    const memory = process.memoryUsage();
    this.set('process_resident_memory_bytes', 'Resident memory size in bytes.', {}, memory.rss);
    this.set('nodejs_heap_used_bytes', 'V8 heap in use, in bytes.', {}, memory.heapUsed);
    this.set(
      'process_uptime_seconds',
      'Seconds since the server started.',
      {},
      (Date.now() - this.startedAt) / 1000,
    );
  }

  private entry(name: string, help: string, type: Family['type'], labels: Labels) {
    let family = this.families.get(name);
    if (!family) {
      family = { help, type, values: new Map() };
      this.families.set(name, family);
    }
    const key = formatLabels(labels);
    let entry = family.values.get(key);
    if (!entry) {
      entry = { labels, value: 0 };
      family.values.set(key, entry);
    }
    return entry;
  }
}

/** `{a="1",b="2"}` with label values escaped as the exposition format requires. */
function formatLabels(labels: Labels): string {
  const pairs = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => {
      const escaped = value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
      return `${key}="${escaped}"`;
    });
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return String(value);
}
