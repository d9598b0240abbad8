/**
 * Reading the DATA stream of a transaction into memory while checking the content limits:
 * message size (RFC 1870), line length (RFC 5321 section 4.5.3.1.6 allows 1000 octets with the
 * CRLF) and the size of the header section. Once a limit is exceeded the rest of the stream is
 * read and dropped, because the client must see the reply only after its final dot.
 */
import type { Readable } from 'node:stream';

import type { DataBudget } from './limits.js';

export interface ContentLimits {
  /** Octets of the whole message; 0 for no limit. */
  maxMessageSize: number;
  /** Octets of one line, its CRLF included (so 1000 allows 998 of text); 0 for no limit. */
  maxLineLength: number;
  /** Octets of the header section, line endings included; 0 for no limit. */
  maxHeaderSize: number;
}

export type ContentVerdict =
  | { ok: true; message: Buffer }
  | {
      ok: false;
      violation: 'message-size' | 'line-length' | 'header-size' | 'storage';
      size: number;
    };

const LF = 0x0a;
const CR = 0x0d;

/** Scans line lengths and the header section across chunk boundaries. */
class LineScanner {
  lineLength = 0;
  longestLine = 0;
  headerSize = 0;
  inHeader = true;
  /** Whether the previous chunk ended with CR, for a CRLF split across chunks. */
  private previousEndedWithCr = false;

  scan(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      const end = lf < 0 ? chunk.length : lf;
      this.lineLength += end - start;
      if (lf < 0) break;
      this.endLine(chunk, lf);
      start = lf + 1;
    }
    if (chunk.length > 0) this.previousEndedWithCr = chunk[chunk.length - 1] === CR;
  }

  private endLine(chunk: Buffer, lf: number): void {
    // The CR of a CRLF is not part of the line's text.
    const hasCr = lf > 0 ? chunk[lf - 1] === CR : this.previousEndedWithCr;
    const text = hasCr ? this.lineLength - 1 : this.lineLength;
    this.longestLine = Math.max(this.longestLine, text);
    if (this.inHeader) {
      // The first empty line ends the header section (RFC 5322 section 2.1); it is not part of it.
      if (text === 0) this.inHeader = false;
      else this.headerSize += this.lineLength + 1;
    }
    this.lineLength = 0;
  }

  /** Octets of the header section so far, counting a header line still open. */
  headerBytes(): number {
    return this.inHeader ? this.headerSize + this.openLineText() : this.headerSize;
  }

  /** Longest line so far, counting the line still open. */
  maxLine(): number {
    return Math.max(this.longestLine, this.openLineText());
  }

  /** Text of the open line: a CR at the end of the last chunk is taken as half of a CRLF. */
  private openLineText(): number {
    return this.previousEndedWithCr && this.lineLength > 0 ? this.lineLength - 1 : this.lineLength;
  }
}

/**
 * Reads a DATA stream to its end and returns the message or the first limit it broke. With a
 * `budget`, each kept chunk is reserved in it first, and a chunk that does not fit makes the
 * verdict `storage`: what was kept is dropped and the rest is read and discarded.
 */
export async function readMessage(
  stream: Readable,
  limits: ContentLimits,
  budget?: DataBudget,
): Promise<ContentVerdict> {
  const chunks: Buffer[] = [];
  const scanner = new LineScanner();
  let size = 0;
  let reserved = 0;
  let violation: Extract<ContentVerdict, { ok: false }>['violation'] | undefined;

  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (violation) continue;

      scanner.scan(chunk);
      if (limits.maxMessageSize > 0 && size > limits.maxMessageSize) violation = 'message-size';
      else if (limits.maxLineLength > 0 && scanner.maxLine() + 2 > limits.maxLineLength) {
        violation = 'line-length';
      } else if (limits.maxHeaderSize > 0 && scanner.headerBytes() > limits.maxHeaderSize) {
        violation = 'header-size';
      } else if (budget && !budget.reserve(chunk.length)) {
        violation = 'storage';
      } else {
        reserved += chunk.length;
      }

      if (violation) {
        chunks.length = 0;
        budget?.release(reserved);
        reserved = 0;
      } else {
        chunks.push(chunk);
      }
    }
  } finally {
    budget?.release(reserved);
  }

  if (violation) return { ok: false, violation, size };
  return { ok: true, message: Buffer.concat(chunks, size) };
}
