/**
 * The tag=value list grammar of RFC 6376 section 3.2, shared by DKIM-Signature fields and key
 * records. Parsing is strict: a tag name must start with a letter, a value may contain only
 * VALCHAR (printable ASCII except `;`) and folding whitespace, and a duplicate tag makes the
 * whole list invalid. The parser returns an error value for bad input and never throws.
 */

export type TagListResult = { ok: true; tags: Map<string, string> } | { ok: false; error: string };

const SP = 0x20;
const HTAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;

function isFws(code: number): boolean {
  return code === SP || code === HTAB || code === CR || code === LF;
}

function isAlpha(code: number): boolean {
  return (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
}

function isAlnumPunc(code: number): boolean {
  return isAlpha(code) || (code >= 0x30 && code <= 0x39) || code === 0x5f;
}

/** VALCHAR: %x21-3A / %x3C-7E. */
function isValChar(code: number): boolean {
  return code >= 0x21 && code <= 0x7e && code !== 0x3b;
}

/**
 * Parses a tag list given as a Latin-1 string (one character per byte). Values keep their inner
 * whitespace; leading and trailing FWS is removed. A CRLF inside the list must be followed by
 * WSP, as FWS requires.
 */
export function parseTagList(input: string): TagListResult {
  const tags = new Map<string, string>();
  const specs = input.split(';');
  // A trailing semicolon is allowed, so the last piece may be empty whitespace.
  if (specs.length > 1 && stripFws(specs[specs.length - 1] ?? '') === '') specs.pop();
  for (const spec of specs) {
    const parsed = parseTagSpec(spec);
    if (typeof parsed === 'string') return { ok: false, error: parsed };
    if (tags.has(parsed.name)) return { ok: false, error: `duplicate tag "${parsed.name}="` };
    tags.set(parsed.name, parsed.value);
  }
  return { ok: true, tags };
}

function parseTagSpec(spec: string): { name: string; value: string } | string {
  const equals = spec.indexOf('=');
  if (equals === -1) return `tag without "=": "${printable(spec)}"`;
  const name = stripFws(spec.slice(0, equals));
  if (name.length === 0) return 'empty tag name';
  if (!isAlpha(name.charCodeAt(0)) || ![...name].every((c) => isAlnumPunc(c.charCodeAt(0)))) {
    return `invalid tag name "${printable(name)}"`;
  }
  const value = stripFws(spec.slice(equals + 1));
  const problem = checkValue(value);
  if (problem !== undefined) return `invalid value of tag "${name}=": ${problem}`;
  return { name, value };
}

/** Checks that a value is tval separated by FWS, with every CRLF followed by WSP. */
function checkValue(value: string): string | undefined {
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    if (isValChar(code) || code === SP || code === HTAB) continue;
    if (code === CR && value.charCodeAt(index + 1) === LF) {
      const next = value.charCodeAt(index + 2);
      if (next !== SP && next !== HTAB) return 'line break not followed by whitespace';
      index++;
      continue;
    }
    return `character 0x${code.toString(16).padStart(2, '0')} not allowed`;
  }
  return undefined;
}

function stripFws(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isFws(text.charCodeAt(start))) start++;
  while (end > start && isFws(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

/** Removes all FWS from a value: base64 tags (b=, bh=, p=) may be folded anywhere. */
export function removeFws(value: string): string {
  return value.replace(/[ \t\r\n]+/g, '');
}

/** Shortens and escapes text for an error message. */
export function printable(text: string): string {
  const short = text.length > 40 ? `${text.slice(0, 40)}...` : text;
  return short.replace(
    /[^\x20-\x7e]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** Decodes strict base64 (RFC 4648 alphabet, optional padding); undefined when invalid. */
export function decodeBase64(value: string): Buffer | undefined {
  const compact = removeFws(value);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return undefined;
  const unpadded = compact.replace(/=+$/, '');
  if (unpadded.length % 4 === 1) return undefined;
  return Buffer.from(unpadded, 'base64');
}
