/**
 * Line endings. Mail travels with CRLF line endings (RFC 5322 section 2.1), but messages written
 * by programs and read from files often end lines with a bare LF. These functions turn every bare
 * LF into CRLF, so a message is signed, hashed and stored as it will be transmitted. `toCrlf`
 * leaves a lone CR that no LF follows as it is, because it is message content, not a line
 * ending. `toSmtpLineEndings` turns it into CRLF too, for messages that travel over SMTP.
 */

const CR = 0x0d;
const LF = 0x0a;

/** Returns `input` with every LF that no CR precedes replaced by CRLF; `input` itself if none. */
export function toCrlf(input: Buffer): Buffer {
  const bareLfCount = countBareLf(input, 0, false);
  if (bareLfCount === 0) return input;
  return insertCr(input, bareLfCount, false);
}

/** Counts the LF bytes of `input` not preceded by CR; `previousWasCr` covers the first byte. */
function countBareLf(input: Buffer, start: number, previousWasCr: boolean): number {
  let count = 0;
  let index = input.indexOf(LF, start);
  while (index !== -1) {
    const precededByCr = index === 0 ? previousWasCr : input[index - 1] === CR;
    if (!precededByCr) count++;
    index = input.indexOf(LF, index + 1);
  }
  return count;
}

function insertCr(input: Buffer, bareLfCount: number, previousWasCr: boolean): Buffer {
  const output = Buffer.allocUnsafe(input.length + bareLfCount);
  let written = 0;
  let copied = 0;
  let index = input.indexOf(LF);
  while (index !== -1) {
    const precededByCr = index === 0 ? previousWasCr : input[index - 1] === CR;
    if (!precededByCr) {
      written += input.copy(output, written, copied, index);
      output[written++] = CR;
      copied = index;
    }
    index = input.indexOf(LF, index + 1);
  }
  written += input.copy(output, written, copied);
  return output.subarray(0, written);
}

/**
 * Converts bare LF to CRLF in a stream of chunks. A CRLF split across two chunks (CR at the end
 * of one, LF at the start of the next) stays one CRLF, so the output does not depend on where
 * the input was split.
 */
export class CrlfNormalizer {
  private lastWasCr = false;

  /** Returns the normalized form of `chunk`, which may be `chunk` itself. */
  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const bareLfCount = countBareLf(chunk, 0, this.lastWasCr);
    const output = bareLfCount === 0 ? chunk : insertCr(chunk, bareLfCount, this.lastWasCr);
    this.lastWasCr = chunk[chunk.length - 1] === CR;
    return output;
  }
}

/** Finds the first CRLF CRLF, the end of the header section; -1 when the buffer has none. */
export function indexOfHeaderEnd(input: Buffer, from = 0): number {
  if (from === 0 && input.length >= 2 && input[0] === CR && input[1] === LF) return 0;
  const index = input.indexOf(BLANK_LINE, Math.max(0, from));
  return index === -1 ? -1 : index + 2;
}

const BLANK_LINE = Buffer.from('\r\n\r\n', 'latin1');

/**
 * Returns `input` with every bare LF and every bare CR turned into CRLF, as SMTP transmits it:
 * a DATA stream has no way to carry a lone CR (RFC 5321 section 2.3.8), and nodemailer's
 * dot-stuffing stream writes one as CRLF. A server that stores and signs the message in this
 * form therefore signs the bytes the next hop receives. Returns `input` itself when no change
 * is needed.
 */
export function toSmtpLineEndings(input: Buffer): Buffer {
  const crlf = toCrlf(input);
  let bareCr = 0;
  for (let index = crlf.indexOf(CR); index !== -1; index = crlf.indexOf(CR, index + 1)) {
    if (crlf[index + 1] !== LF) bareCr++;
  }
  if (bareCr === 0) return crlf;

  const output = Buffer.allocUnsafe(crlf.length + bareCr);
  let written = 0;
  let copied = 0;
  for (let index = crlf.indexOf(CR); index !== -1; index = crlf.indexOf(CR, index + 1)) {
    if (crlf[index + 1] === LF) continue;
    written += crlf.copy(output, written, copied, index + 1);
    output[written++] = LF;
    copied = index + 1;
  }
  written += crlf.copy(output, written, copied);
  return output.subarray(0, written);
}
