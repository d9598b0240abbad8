/**
 * The settings table of `docs/configuration.md`, rendered from the settings list. A test checks
 * that the document contains every row exactly, so the document cannot drift from the code.
 */
import { SETTINGS, environmentName, type Setting } from './settings.js';
import { formatDuration, parseDuration } from './units.js';

const KIND_TEXT: Record<Setting['kind'], string> = {
  string: 'string',
  hostname: 'domain name',
  'domain-list': 'list of domains',
  path: 'path',
  'optional-path': 'path or none',
  port: 'port',
  count: 'integer',
  number: 'number',
  duration: 'duration',
  size: 'size (bytes)',
  list: 'list of strings',
  'host-port-list': 'list of host:port',
  'log-level': 'level',
  url: 'URL',
  'local-part': 'local part',
  'domain-rules': 'list of rules',
};

/** Render one Markdown table row per setting: path, variable, kind, default, description. */
export function settingsTable(): string {
  const lines = [
    '| setting | environment | kind | default | description |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const setting of SETTINGS) {
    const cells = [
      `\`${setting.path}\``,
      `\`${environmentName(setting.path)}\``,
      KIND_TEXT[setting.kind],
      defaultText(setting),
      setting.description.replaceAll('|', '\\|'),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

function defaultText(setting: Setting): string {
  if (setting.defaultText !== undefined) return setting.defaultText;
  const value = setting.default;
  if (setting.kind === 'duration') return `\`${formatDuration(parseDuration(value) ?? 0)}\``;
  if (setting.kind === 'size' && typeof value === 'number') return `\`${value}\``;
  if (Array.isArray(value)) return value.length === 0 ? 'empty' : `\`${value.join(',')}\``;
  return `\`${String(value)}\``;
}
