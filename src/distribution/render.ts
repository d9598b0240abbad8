/**
 * Merge fields: `{{first_name}}` or `{{first_name | friend}}` with a default used when the
 * subscriber has no value. Templates are compiled once per campaign and rendered per
 * recipient. Values are HTML-escaped in the HTML body, and in header fields every control
 * character (CR and LF included) becomes a space, so no value can start a new header field.
 */

export type TemplatePart = string | { field: string; fallback: string };

export interface CompiledTemplate {
  parts: TemplatePart[];
  /** Field names the template uses, for validation when a campaign is created. */
  fields: string[];
}

/** Values for one recipient: subscriber columns, custom fields and campaign links. */
export type MergeContext = Record<string, string | undefined>;

const FIELD = /\{\{\s*([A-Za-z0-9_.-]+)\s*(?:\|\s*((?:[^}]|\}(?!\}))*?)\s*)?\}\}/g;

/** Parses a template into literal text and field references. */
export function compileTemplate(source: string): CompiledTemplate {
  const parts: TemplatePart[] = [];
  const fields = new Set<string>();
  let last = 0;
  for (const match of source.matchAll(FIELD)) {
    if (match.index > last) parts.push(source.slice(last, match.index));
    const field = match[1]!.toLowerCase();
    parts.push({ field, fallback: unquote(match[2] ?? '') });
    fields.add(field);
    last = match.index + match[0].length;
  }
  if (last < source.length) parts.push(source.slice(last));
  return { parts, fields: [...fields] };
}

/** Renders a compiled template; `escape` is applied to substituted values only. */
export function renderTemplate(
  template: CompiledTemplate,
  context: MergeContext,
  escape: (value: string) => string = (value) => value,
): string {
  let output = '';
  for (const part of template.parts) {
    if (typeof part === 'string') {
      output += part;
      continue;
    }
    const value = context[part.field];
    output += escape(value === undefined || value === '' ? part.fallback : value);
  }
  return output;
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]+/g;

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char]!);
}

/**
 * Makes a value safe inside a header field: control characters (CR, LF, NUL, tabs) become
 * spaces and runs of spaces collapse, so a merge value can never end the field.
 */
export function sanitizeHeaderValue(value: string): string {
  return value.replace(CONTROL_CHARACTERS, ' ').replace(/ {2,}/g, ' ').trim();
}

function unquote(fallback: string): string {
  const quoted = /^"(.*)"$|^'(.*)'$/.exec(fallback);
  return quoted ? (quoted[1] ?? quoted[2] ?? '') : fallback;
}
