/**
 * Campaign charts drawn as inline SVG: cumulative delivered, deferred and bounced counts over
 * time, from the campaign's events. Each chart has a text title for screen readers and a
 * table of the same numbers beside it.
 */
import { html, type Html } from './html.js';

export interface ChartEvent {
  time: Date;
  kind: string;
}

export const SERIES = [
  { kind: 'delivered', label: 'Delivered', className: 'series-delivered' },
  { kind: 'deferred', label: 'Deferred', className: 'series-deferred' },
  { kind: 'bounced', label: 'Bounced', className: 'series-bounced' },
] as const;

const WIDTH = 640;
const HEIGHT = 240;
const MARGIN = { top: 16, right: 16, bottom: 36, left: 48 };
const BUCKETS = 24;

/** Cumulative counts per series at `BUCKETS` evenly spaced times. */
export function bucketEvents(events: ChartEvent[]): {
  times: Date[];
  series: Record<string, number[]>;
} {
  const relevant = events.filter((event) => SERIES.some((series) => series.kind === event.kind));
  const series: Record<string, number[]> = Object.fromEntries(
    SERIES.map((entry) => [entry.kind, []]),
  );
  if (relevant.length === 0) return { times: [], series };
  const start = Math.min(...relevant.map((event) => event.time.getTime()));
  const end = Math.max(...relevant.map((event) => event.time.getTime()));
  const step = Math.max(1, (end - start) / (BUCKETS - 1));
  const times = Array.from({ length: BUCKETS }, (_, index) => new Date(start + index * step));
  for (const entry of SERIES) {
    const stamps = relevant
      .filter((event) => event.kind === entry.kind)
      .map((event) => event.time.getTime());
    series[entry.kind] = times.map(
      (time) => stamps.filter((stamp) => stamp <= time.getTime()).length,
    );
  }
  return { times, series };
}

export function deliveryChart(events: ChartEvent[], title: string): Html {
  const { times, series } = bucketEvents(events);
  if (times.length === 0) return html`<p>No delivery results yet.</p>`;
  const max = Math.max(1, ...Object.values(series).flat());
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (index: number) => MARGIN.left + (index / (times.length - 1)) * plotWidth;
  const y = (value: number) => MARGIN.top + plotHeight - (value / max) * plotHeight;
  const ticks = [0, Math.round(max / 2), max];
  const label = (date: Date | undefined) => (date ? date.toISOString().slice(11, 19) : '');

  const lines = SERIES.map((entry) => {
    const points = (series[entry.kind] ?? [])
      .map((value, index) => `${x(index).toFixed(1)},${y(value).toFixed(1)}`)
      .join(' ');
    return html`<polyline
      class="${entry.className}"
      fill="none"
      stroke-width="2"
      points="${points}"
    />`;
  });
  const final = (kind: string) => series[kind]?.at(-1) ?? 0;

  return html`<figure class="chart">
    <svg
      viewBox="0 0 ${WIDTH} ${HEIGHT}"
      role="img"
      aria-labelledby="chart-title"
      xmlns="http://www.w3.org/2000/svg"
    >
      <title id="chart-title">
        ${title}: ${SERIES.map((entry) => `${entry.label} ${final(entry.kind)}`).join(', ')}
      </title>
      ${ticks.map(
        (tick) =>
          html`<line
              class="grid"
              x1="${MARGIN.left}"
              x2="${WIDTH - MARGIN.right}"
              y1="${y(tick)}"
              y2="${y(tick)}"
            />
            <text class="axis" x="${MARGIN.left - 6}" y="${y(tick) + 4}" text-anchor="end"
              >${tick}</text
            >`,
      )}
      <text class="axis" x="${MARGIN.left}" y="${HEIGHT - 12}">${label(times[0])}</text>
      <text class="axis" x="${WIDTH - MARGIN.right}" y="${HEIGHT - 12}" text-anchor="end">
        ${label(times.at(-1))} UTC
      </text>
      ${lines}
    </svg>
    <figcaption>
      <ul class="legend">
        ${SERIES.map(
          (entry) =>
            html`<li>
              <span class="swatch ${entry.className}"></span>${entry.label}: ${final(entry.kind)}
            </li>`,
        )}
      </ul>
    </figcaption>
  </figure>`;
}
