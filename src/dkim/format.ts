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
  const words = [
    `v=1;`,
    `a=${tags.algorithm};`,
    `c=${tags.canonicalization};`,
    `d=${tags.domain};`,
  ];
  if (tags.identity !== undefined) words.push(`i=${tags.identity};`);
  words.push('q=dns/txt;', `s=${tags.selector};`, `t=${tags.timestamp};`);
  if (tags.expiration !== undefined) words.push(`x=${tags.expiration};`);
  if (tags.bodyLength !== undefined) words.push(`l=${tags.bodyLength};`);
  words.push(...headerListWords(tags.signedHeaders), `bh=${tags.bodyHash};`);
  let output = 'DKIM-Signature:';
  let lineLength = output.length;
  for (const word of words) {
    if (lineLength + 1 + word.length > FOLD_WIDTH) {
      output += '\r\n';
      lineLength = 0;
    }
    output += ` ${word}`;
    lineLength += 1 + word.length;
  }
  return output;
}

/** Completes the field from `formatSignatureTags` with `b=` set to `b` (empty to sign). */
export function withSignatureValue(tagLines: string, b: string): string {
  return `${tagLines}\r\n${foldSignatureValue(b)}\r\n`;
}

/** Splits `h=a : b : c;` into words so folding can break between the names. */
function headerListWords(names: readonly string[]): string[] {
  const words: string[] = [];
  names.forEach((name, index) => {
    if (index === 0) words.push(`h=${name}`);
    else words.push(':', name);
  });
  words[words.length - 1] += ';';
  return words;
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
