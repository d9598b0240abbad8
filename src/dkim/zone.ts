/**
 * A reader for the TXT records of a BIND-style zone file (RFC 1035 section 5), enough to
 * verify offline: `$ORIGIN` and `$TTL` lines, `@`, relative and absolute owner names, a blank
 * owner that repeats the previous one, optional TTL and class, several quoted strings per record
 * with `\"` and `\DDD` escapes, `;` comments and the parenthesised multi-line form that
 * `opendkim-genkey` writes. Records of other types are skipped. The reader never throws: a line
 * it cannot read is reported in `errors`.
 */

export interface ZoneFile {
  /** TXT records by owner name (lower case, no final dot), each an array of strings. */
  records: Map<string, string[][]>;
  /** Lines that could not be read, with their line numbers. */
  errors: string[];
}

/** Reads the TXT records of `text`; `origin` applies until a `$ORIGIN` line. */
export function parseZoneFile(text: string, origin = ''): ZoneFile {
  const records = new Map<string, string[][]>();
  const errors: string[] = [];
  let currentOrigin = trimDot(origin.toLowerCase());
  let previousOwner = '';
  for (const entry of joinEntries(text)) {
    const tokens = entry.tokens;
    const first = tokens[0];
    if (first === undefined) continue;
    if (!first.quoted && first.text.toUpperCase() === '$ORIGIN') {
      currentOrigin = trimDot((tokens[1]?.text ?? '').toLowerCase());
      continue;
    }
    if (!first.quoted && first.text.startsWith('$')) continue;
    let index = 0;
    let owner = previousOwner;
    if (!entry.startsWithBlank) {
      owner = qualify(first.text, currentOrigin);
      index = 1;
    }
    previousOwner = owner;
    // Skip an optional TTL and class, in either order, up to the type.
    while (index < tokens.length && isTtlOrClass(tokens[index]?.text ?? '')) index++;
    const type = tokens[index]?.text.toUpperCase();
    if (type === undefined) {
      errors.push(`line ${entry.line}: record without a type`);
      continue;
    }
    if (type !== 'TXT') continue;
    const strings = tokens.slice(index + 1).map((token) => token.text);
    if (strings.length === 0) {
      errors.push(`line ${entry.line}: TXT record without strings`);
      continue;
    }
    const list = records.get(owner) ?? [];
    list.push(strings);
    records.set(owner, list);
  }
  return { records, errors };
}

function trimDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

function qualify(name: string, origin: string): string {
  const lower = name.toLowerCase();
  if (lower === '@') return origin;
  if (lower.endsWith('.')) return lower.slice(0, -1);
  return origin === '' ? lower : `${lower}.${origin}`;
}

function isTtlOrClass(token: string): boolean {
  return /^[0-9]+[smhdw]?$/i.test(token) || ['IN', 'CH', 'HS', 'CS'].includes(token.toUpperCase());
}

interface Token {
  text: string;
  quoted: boolean;
}

interface Entry {
  tokens: Token[];
  startsWithBlank: boolean;
  line: number;
}

/** Tokenizes the file into entries, joining the lines of a parenthesised record. */
function* joinEntries(text: string): Generator<Entry> {
  let tokens: Token[] = [];
  let depth = 0;
  let startsWithBlank = false;
  let startLine = 1;
  let line = 1;
  let index = 0;
  let atLineStart = true;
  while (index < text.length) {
    const char = text[index] ?? '';
    if (atLineStart && depth === 0) {
      startsWithBlank = char === ' ' || char === '\t';
      startLine = line;
    }
    atLineStart = false;
    if (char === '\n') {
      line++;
      index++;
      atLineStart = true;
      if (depth === 0) {
        if (tokens.length > 0) yield { tokens, startsWithBlank, line: startLine };
        tokens = [];
      }
      continue;
    }
    if (char === ' ' || char === '\t' || char === '\r') index++;
    else if (char === ';') {
      while (index < text.length && text[index] !== '\n') index++;
    } else if (char === '(') {
      depth++;
      index++;
    } else if (char === ')') {
      depth = Math.max(0, depth - 1);
      index++;
    } else if (char === '"') {
      const [value, next] = readQuoted(text, index + 1);
      tokens.push({ text: value, quoted: true });
      index = next;
    } else {
      let end = index;
      while (end < text.length && !' \t\r\n;()"'.includes(text[end] ?? ' ')) end++;
      tokens.push({ text: text.slice(index, end), quoted: false });
      index = end;
    }
  }
  if (tokens.length > 0) yield { tokens, startsWithBlank, line: startLine };
}

/** Reads a quoted string from `start` (after the quote); returns the value and the next index. */
function readQuoted(text: string, start: number): [string, number] {
  let value = '';
  let index = start;
  while (index < text.length) {
    const char = text[index] ?? '';
    if (char === '"') return [value, index + 1];
    if (char === '\\') {
      const digits = /^[0-9]{3}/.exec(text.slice(index + 1, index + 4));
      if (digits !== null) {
        value += String.fromCharCode(Number(digits[0]) & 0xff);
        index += 4;
      } else {
        value += text[index + 1] ?? '';
        index += 2;
      }
      continue;
    }
    value += char;
    index++;
  }
  return [value, index];
}

/**
 * Returns a `lookupTxt` function over the records of a zone file, with the error contract of
 * Node's resolver: a name with no TXT record rejects with `code` `ENOTFOUND`.
 */
export function createZoneLookup(zone: ZoneFile): (name: string) => Promise<string[][]> {
  return (name: string) => {
    const records = zone.records.get(trimDot(name.toLowerCase()));
    if (records === undefined) {
      const error = new Error(`queryTxt ENOTFOUND ${name}`) as NodeJS.ErrnoException;
      error.code = 'ENOTFOUND';
      return Promise.reject(error);
    }
    return Promise.resolve(records.map((strings) => [...strings]));
  };
}
