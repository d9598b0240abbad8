/**
 * A plain-text alternative generated from a campaign's HTML body when the author gives none:
 * block elements become line breaks, links keep their target in angle brackets, list items
 * get a dash, scripts, styles and the head are dropped, and character references are decoded.
 */

const DROPPED = /<(script|style|head|title)\b[^>]*>[\s\S]*?<\/\1\s*>/gi;
const COMMENT = /<!--[\s\S]*?-->/g;
const BLOCK =
  /<\/?(p|div|h[1-6]|table|tr|ul|ol|blockquote|section|article|header|footer|pre|hr)\b[^>]*>/gi;

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
  copy: '\u00a9',
  reg: '\u00ae',
  hellip: '\u2026',
  mdash: '\u2014',
  ndash: '\u2013',
  lsquo: '\u2018',
  rsquo: '\u2019',
  ldquo: '\u201c',
  rdquo: '\u201d',
  euro: '\u20ac',
};

/** Converts an HTML document or fragment to readable plain text. */
export function htmlToText(html: string): string {
  let text = html.replace(COMMENT, '').replace(DROPPED, '');
  text = text.replace(
    /<a\b[^>]*?href\s*=\s*("([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>([\s\S]*?)<\/a\s*>/gi,
    (_whole, _quoted, double?: string, single?: string, bare?: string, inner = '') =>
      linkText(String(inner), double ?? single ?? bare ?? ''),
  );
  text = text
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<li\b[^>]*>/gi, '\n- ')
    .replace(/<\/li\s*>/gi, '')
    .replace(/<\/(td|th)\s*>/gi, ' ')
    .replace(BLOCK, '\n\n')
    .replace(/<[^>]+>/g, '');
  text = decodeEntities(text).replaceAll('\u0001', '<').replaceAll('\u0002', '>');

  const lines = text.split('\n').map((line) => line.replace(/[ \t\u00a0]+/g, ' ').trim());
  return lines
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/**
 * Formats the text of a link. The angle brackets around the target are written as U+0001 and U+0002
 * and restored at the end, so the tag removal that follows does not take them for a tag.
 */
function linkText(inner: string, href: string): string {
  const label = decodeEntities(inner.replace(/<[^>]+>/g, '')).trim();
  const target = decodeEntities(href).trim();
  if (target === '' || target.startsWith('#')) return label;
  if (label === '' || label === target || `mailto:${label}` === target)
    return `\u0001${target}\u0002`;
  return `${label} \u0001${target}\u0002`;
}

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, entity: string) => {
    if (entity[0] === '#') {
      const code =
        entity[1] === 'x' || entity[1] === 'X'
          ? parseInt(entity.slice(2), 16)
          : parseInt(entity.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return NAMED_ENTITIES[entity.toLowerCase()] ?? whole;
  });
}
