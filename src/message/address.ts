/**
 * Mailbox lists from address header fields (`From`, `To`, `Cc`, `Reply-To`, RFC 5322 section
 * 3.4). The parser is lenient in what it accepts, as receivers must be: it understands display
 * names, quoted strings, comments, angle-bracket addresses and groups, and it never throws.
 * It does not decode RFC 2047 encoded words in display names.
 */

/** One mailbox: the address and, when the field gave one, the display name. */
export interface Mailbox {
  /** `local@domain` as written, without angle brackets. */
  address: string;
  /** The display name with quoting and comments removed, or undefined when absent. */
  name?: string;
}

type Token =
  | { kind: 'word'; text: string }
  | { kind: 'quoted'; text: string }
  | { kind: 'special'; text: string };

/** Splits an address field value into words, quoted strings and the specials `<>,:;@`. */
function tokenize(value: string): Token[] {
  const tokens: Token[] = [];
  let index = 0;
  while (index < value.length) {
    const char = value[index] ?? '';
    if (char === ' ' || char === '\t' || char === '\r' || char === '\n') {
      index++;
    } else if (char === '(') {
      index = skipComment(value, index);
    } else if (char === '"') {
      const [text, next] = readQuoted(value, index);
      tokens.push({ kind: 'quoted', text });
      index = next;
    } else if ('<>,:;@'.includes(char)) {
      tokens.push({ kind: 'special', text: char });
      index++;
    } else {
      // A stray ")" (no comment open) cannot start a word; it is dropped.
      let end = index + 1;
      while (end < value.length && !' \t\r\n()"<>,:;@'.includes(value[end] ?? ' ')) end++;
      if (char !== ')') tokens.push({ kind: 'word', text: value.slice(index, end) });
      index = end;
    }
  }
  return tokens;
}

/** Returns the index after the comment that opens at `start`; comments nest. */
function skipComment(value: string, start: number): number {
  let depth = 0;
  let index = start;
  while (index < value.length) {
    const char = value[index];
    if (char === '\\') index++;
    else if (char === '(') depth++;
    else if (char === ')') {
      depth--;
      if (depth === 0) return index + 1;
    }
    index++;
  }
  return value.length;
}

function readQuoted(value: string, start: number): [string, number] {
  let text = '';
  let index = start + 1;
  while (index < value.length) {
    const char = value[index] ?? '';
    if (char === '\\') {
      text += value[index + 1] ?? '';
      index += 2;
    } else if (char === '"') {
      return [text, index + 1];
    } else {
      text += char;
      index++;
    }
  }
  return [text, index];
}

/** Parses a mailbox list or address list; groups contribute their members. */
export function parseAddressList(value: string): Mailbox[] {
  const tokens = tokenize(value);
  const mailboxes: Mailbox[] = [];
  let phrase: Token[] = [];
  let index = 0;
  while (index < tokens.length) {
    const token = tokens[index];
    index++;
    if (token === undefined) break;
    if (token.kind === 'special' && token.text === '<') {
      const close = tokens.findIndex(
        (t, i) => i >= index && t.kind === 'special' && t.text === '>',
      );
      const end = close === -1 ? tokens.length : close;
      const address = joinAddress(tokens.slice(index, end));
      const name = phrase.map((t) => t.text).join(' ');
      if (address !== '') mailboxes.push(name === '' ? { address } : { address, name });
      phrase = [];
      index = end + 1;
    } else if (token.kind === 'special' && (token.text === ',' || token.text === ';')) {
      pushBareAddress(phrase, mailboxes);
      phrase = [];
    } else if (token.kind === 'special' && token.text === ':') {
      // A group name ends here; its members follow as ordinary mailboxes.
      phrase = [];
    } else {
      phrase.push(token);
    }
  }
  pushBareAddress(phrase, mailboxes);
  return mailboxes;
}

/** Drops a route (`@a,@b:`) from an angle address and joins the rest. */
function joinAddress(tokens: Token[]): string {
  const colon = tokens.findIndex((t) => t.kind === 'special' && t.text === ':');
  const rest = colon === -1 ? tokens : tokens.slice(colon + 1);
  return rest.map(tokenText).join('');
}

function tokenText(token: Token): string {
  if (token.kind === 'quoted') return `"${token.text.replace(/(["\\])/g, '\\$1')}"`;
  return token.text;
}

function pushBareAddress(tokens: Token[], mailboxes: Mailbox[]): void {
  if (tokens.length === 0) return;
  const address = tokens.map(tokenText).join('');
  if (address.includes('@')) mailboxes.push({ address });
}

/** Returns the domain of `local@domain` in lower case, or undefined when there is no `@`. */
export function domainOf(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  if (at === -1 || at === address.length - 1) return undefined;
  return address.slice(at + 1).toLowerCase();
}
