/**
 * The layout of a DKIM-Signature field. Tags come in the order and spacing of the examples of
 * RFC 8463 Appendix A (`q=dns/txt` included, `h=` names joined by " : "), so Herald reproduces
 * those signatures exactly. Lines are folded at spaces to 78 columns, and `b=` starts its own
 * line and breaks wherever the width requires, as FWS may appear anywhere in base64 values.
 */
import { FOLD_WIDTH } from '../message/index.js';

export interface SignatureTags {
  algorithm: string;
  canonicalization: string;
  domain: string;
  identity?: string;
  selector: string;
  timestamp: number;
  expiration?: number;
  bodyLength?: number;
  signedHeaders: readonly string[];
  bodyHash: string;
}

/**
 * Formats the field up to the line that contains `b=`: `DKIM-Signature: v=1; ...; bh=...;`,
 * without a final CRLF. `withSignatureValue` completes it.
 */
export function formatSignatureTags(tags: SignatureTags): string {
  const line = new FoldedLine('DKIM-Signature:');
  line.add('v=1;');
  line.add(`a=${tags.algorithm};`);
  line.add(`c=${tags.canonicalization};`);
  line.add(`d=${tags.domain};`);
  if (tags.identity !== undefined) line.add(`i=${tags.identity};`);
  line.add('q=dns/txt;');
  line.add(`s=${tags.selector};`);
  line.add(`t=${tags.timestamp};`);
  if (tags.expiration !== undefined) line.add(`x=${tags.expiration};`);
  if (tags.bodyLength !== undefined) line.add(`l=${tags.bodyLength};`);
  // `h=a : b : c;` goes word by word, so folding can break between the names.
  const names = tags.signedHeaders;
  const last = names.length - 1;
  names.forEach((name, index) => {
    if (index > 0) line.add(':');
    const word = index === 0 ? `h=${name}` : name;
    line.add(index === last ? `${word};` : word);
  });
  line.add(`bh=${tags.bodyHash};`);
  return line.text;
}

/** Text folded at spaces: each word is added after a space, on a new line past `FOLD_WIDTH`. */
class FoldedLine {
  private lineLength: number;

  constructor(public text: string) {
    this.lineLength = text.length;
  }

  add(word: string): void {
    if (this.lineLength + 1 + word.length > FOLD_WIDTH) {
      this.text += '\r\n';
      this.lineLength = 0;
    }
    this.text += ` ${word}`;
    this.lineLength += 1 + word.length;
  }
}

/** Completes the field from `formatSignatureTags` with `b=` set to `b` (empty to sign). */
export function withSignatureValue(tagLines: string, b: string): string {
  return `${tagLines}\r\n${foldSignatureValue(b)}\r\n`;
}

function foldSignatureValue(b: string): string {
  let output = ' b=';
  let remaining = b;
  let room = FOLD_WIDTH - output.length;
  while (remaining.length > room) {
    output += `${remaining.slice(0, room)}\r\n `;
    remaining = remaining.slice(room);
    room = FOLD_WIDTH - 1;
  }
  return output + remaining;
}
