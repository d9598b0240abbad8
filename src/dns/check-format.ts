/** Plain-text rendering of a setup check, for `herald dns check` and logs. */
import type { ReadinessItem } from './check-readiness.js';
import type { CheckReport, RecordCheck } from './check-types.js';

const MARK: Record<RecordCheck['status'], string> = {
  ok: 'ok     ',
  warning: 'WARNING',
  error: 'ERROR  ',
  unknown: 'UNKNOWN',
};

/** One block per record: status, purpose and name, then each finding with its fix. */
export function formatCheckReport(report: CheckReport): string {
  const counts = { error: 0, warning: 0 };
  for (const record of report.records) {
    for (const finding of record.findings) {
      if (finding.severity === 'error') counts.error++;
      if (finding.severity === 'warning') counts.warning++;
    }
  }
  const lines = [
    `DNS check of ${report.domain}: ${report.ok ? 'ready' : 'not ready'} (${counts.error} errors, ${counts.warning} warnings)`,
  ];
  for (const record of report.records) {
    lines.push('', `${MARK[record.status]}  ${record.purpose}: ${record.type} ${record.name}`);
    for (const finding of record.findings) {
      lines.push(`         ${finding.severity}: ${finding.message}`);
      if (finding.fix) lines.push(`         fix: ${finding.fix}`);
    }
    if (record.status !== 'ok') {
      lines.push(`         expected: ${record.expected}`);
      for (const found of record.found) lines.push(`         found:    ${found}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

const READINESS_MARK: Record<ReadinessItem['status'], string> = {
  met: 'met    ',
  'not-met': 'NOT MET',
  unknown: 'UNKNOWN',
};

/** The readiness card for bulk sending: one line per requirement, then its detail. */
export function formatReadiness(items: ReadinessItem[]): string {
  const lines = ['', 'Readiness for bulk sending:'];
  for (const item of items) {
    lines.push(`${READINESS_MARK[item.status]}  ${item.title}`, `         ${item.detail}`);
  }
  return `${lines.join('\n')}\n`;
}
