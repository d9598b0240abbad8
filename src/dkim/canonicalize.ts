/**
 * Canonicalization (RFC 6376 section 3.4), on bytes. The body canonicalizer streams: it takes
 * chunks split anywhere, keeps only a few bytes of state between them, and writes canonical bytes
 * into a sink (a hash), so a 50 MB body needs no 50 MB buffer. Clean stretches of a chunk go to
 * the sink in one piece, found with native `indexOf` scans, which keeps relaxed canonicalization
 * near the speed of SHA-256 itself.
 */
import { isWsp } from '../message/index.js';
import type { Canonicalization } from './types.js';
import { loadChunk, scanAvailable } from './wasm-scan.js';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

const SPACE = Buffer.from(' ');
const CRLF = Buffer.from('\r\n');
const SPACE_CR = Buffer.from(' \r');
const EMPTY = Buffer.alloc(0);

/** The destination of canonical bytes: a `Hash`, or anything else with `update`. */
export interface CanonicalSink {
  update(data: Buffer): unknown;
}

/** Canonicalizes one header field, raw with its CRLF, and returns it with a final CRLF. */
export function canonicalizeHeader(raw: Buffer, method: Canonicalization): Buffer {
  if (method === 'simple') return raw;
  return relaxedHeader(raw);
}

/**
 * Relaxed header canonicalization (section 3.4.2): lower-case name, unfold, reduce WSP runs to
 * one SP, remove WSP at the end of the value and around the colon.
 */
function relaxedHeader(raw: Buffer): Buffer {
  const output = Buffer.allocUnsafe(raw.length + 2);
  return output.subarray(0, writeRelaxedHeader(raw, output, 0));
}

/**
 * Writes the relaxed form of `raw`, with its CRLF, into `output` at `offset` and returns the
 * offset after it. `output` needs `raw.length + 2` bytes of room: the form is never longer.
 */
export function writeRelaxedHeader(raw: Buffer, output: Buffer, offset: number): number {
  const colon = raw.indexOf(COLON);
  let written = offset;
  let nameEnd = colon;
  while (nameEnd > 0 && isWsp(raw[nameEnd - 1])) nameEnd--;
  for (let index = 0; index < nameEnd; index++) {
    const byte = raw[index] ?? 0;
    output[written++] = byte >= 0x41 && byte <= 0x5a ? byte + 0x20 : byte;
  }
  output[written++] = COLON;
  let pendingSpace = false;
  let seenValue = false;
  for (let index = colon + 1; index < raw.length; index++) {
    const byte = raw[index] ?? 0;
    if (byte === CR || byte === LF) continue;
    if (byte === SP || byte === HTAB) {
      pendingSpace = seenValue;
      continue;
    }
    if (pendingSpace) output[written++] = SP;
    pendingSpace = false;
    seenValue = true;
    output[written++] = byte;
  }
  output[written++] = CR;
  output[written++] = LF;
  return written;
}

/**
 * Streams a body through simple or relaxed canonicalization (sections 3.4.3 and 3.4.4). Empty
 * lines at the end are held back until content follows them, so they vanish when none does.
 * The input of `update` must use CRLF line endings; `updateCheckingLineEndings` takes input
 * that may not, and stops at the first bare LF.
 */
export class BodyCanonicalizer {
  /** CRLFs seen but not yet written: they may be trailing empty lines. */
  private pendingCrlf = 0;
  private wroteContent = false;
  /** The bytes cut from the end of the previous chunk (at most a space and a CR). */
  private carry: Buffer = EMPTY;
  private finished = false;
  /** True inside `updateCheckingLineEndings`: a bare LF then stops the pass. */
  private checkingLineEndings = false;
  /** True once `updateCheckingLineEndings` has found a bare LF; the output is then incomplete. */
  private foundBareLf = false;

  constructor(
    private readonly method: Canonicalization,
    private readonly sink: CanonicalSink,
  ) {}

  update(input: Buffer): void {
    if (input.length === 0 || this.foundBareLf) return;
    const chunk = this.carry.length === 0 ? input : Buffer.concat([this.carry, input]);
    // An LF at the start of a chunk follows the previous chunk's last byte, which was not a CR
    // (a final CR is carried into this chunk), or the LF of the blank line before the body.
    if (this.checkingLineEndings && chunk[0] === LF) {
      this.foundBareLf = true;
      return;
    }
    const end = this.cutTail(chunk);
    if (this.method === 'simple') this.writeSimple(chunk, end);
    else this.writeRelaxed(chunk, end);
  }

  /**
   * Adds a chunk whose line endings are unknown, in one pass with the canonicalization.
   * Returns false, and writes nothing more from then on, when the body so far contains an LF
   * that no CR precedes: the caller then starts again on the body converted with `toCrlf`. The
   * first chunk must start the body, so an LF at its start counts as bare.
   */
  updateCheckingLineEndings(input: Buffer): boolean {
    this.checkingLineEndings = true;
    try {
      this.update(input);
    } finally {
      this.checkingLineEndings = false;
    }
    return !this.foundBareLf;
  }

  /** Writes the final CRLF (and, for simple, the CRLF of an empty body). Call once. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    const carry = this.carry;
    this.carry = EMPTY;
    // The last line has no CRLF, so a WSP run at its end is not "at the end of a line" (RFC 6376
    // section 3.4.4 step a runs before step b adds the CRLF): it stays as one SP, as dkimpy and
    // OpenDKIM do it. A final bare CR is content.
    if (carry.length > 0) this.writeSegment(carry, 0, carry.length);
    if (this.wroteContent || this.method === 'simple') this.sink.update(CRLF);
  }

  /**
   * Cuts the bytes whose meaning depends on the next chunk: a final CR (half of a CRLF?) and, in
   * relaxed mode, a final WSP run (trailing whitespace or an inner run?). A run becomes one SP in
   * the carry, because relaxed output treats every run alike.
   */
  private cutTail(chunk: Buffer): number {
    let end = chunk.length;
    const endsWithCr = chunk[end - 1] === CR;
    if (endsWithCr) end--;
    let wspStart = end;
    if (this.method === 'relaxed') {
      while (wspStart > 0 && isWsp(chunk[wspStart - 1])) wspStart--;
    }
    const hasWsp = wspStart < end;
    if (!hasWsp && !endsWithCr) this.carry = EMPTY;
    else if (hasWsp && endsWithCr) this.carry = SPACE_CR;
    else this.carry = hasWsp ? SPACE : Buffer.from([CR]);
    return wspStart;
  }

  private writeSimple(chunk: Buffer, end: number): void {
    if (this.checkingLineEndings) {
      const loaded = end >= WASM_THRESHOLD ? loadChunk(chunk, end) : null;
      const bareLf =
        loaded === null ? findBareLf(chunk, end) !== -1 : loaded.findBareLf(0, end) !== -1;
      if (bareLf) {
        this.foundBareLf = true;
        return;
      }
    }
    this.writeSegment(chunk, 0, end);
  }

  /**
   * Relaxed: writes clean stretches whole and rewrites each WSP run that needs it. The
   * WebAssembly scan finds the runs and, in the same pass, the bare LFs. It takes the chunk in
   * blocks of `SCAN_BLOCK` bytes, and the clean part of each block goes to the sink before the
   * next is copied, so the hash reads bytes that the copy has just brought into the cache.
   */
  private writeRelaxed(chunk: Buffer, end: number): void {
    // Small chunks are not worth the copy into WebAssembly memory.
    if (end < WASM_THRESHOLD || !scanAvailable()) {
      this.writeRelaxedInJs(chunk, end);
      return;
    }
    let position = 0;
    for (let blockStart = 0; blockStart < end; blockStart += SCAN_BLOCK) {
      const blockEnd = Math.min(blockStart + SCAN_BLOCK, end);
      // One byte past the block, for the pairs that start on its last byte.
      const loadEnd = Math.min(blockEnd + 1, end);
      const loaded = loadChunk(chunk, loadEnd, blockStart);
      if (loaded === null) throw new Error('the WebAssembly scan failed to load a block');
      let from = Math.max(position, blockStart);
      while (from < blockEnd) {
        const local = loaded.scan(from - blockStart, loadEnd - blockStart);
        // A match on the byte past the block is found again in the next block.
        if (local === -1 || local + blockStart >= blockEnd) break;
        const match = local + blockStart;
        const byte = chunk[match];
        // The scan matches the byte before a bare LF too; `match + 1 < end` holds for those.
        if (chunk[match + 1] === LF && byte !== CR) {
          if (this.checkingLineEndings) {
            this.foundBareLf = true;
            return;
          }
          if (!isWsp(byte)) {
            from = match + 1;
            continue;
          }
        }
        const runEnd = this.writeRun(chunk, position, match, end);
        // An LF right after a run has WSP, not CR, before it; the scan resumes past it.
        if (this.checkingLineEndings && runEnd < end && chunk[runEnd] === LF) {
          this.foundBareLf = true;
          return;
        }
        position = runEnd;
        from = runEnd;
      }
      // Never between the CR and LF of a CRLF, which could be trailing empty lines.
      const flushEnd = chunk[blockEnd - 1] === CR ? blockEnd - 1 : blockEnd;
      if (flushEnd > position) {
        this.writeSegment(chunk, position, flushEnd);
        position = flushEnd;
      }
    }
    this.writeSegment(chunk, position, end);
  }

  /** Runs the relaxed pass without WebAssembly: `indexOf` finds tabs and a loop finds spaces. */
  private writeRelaxedInJs(chunk: Buffer, end: number): void {
    if (this.checkingLineEndings && findBareLf(chunk, end) !== -1) {
      this.foundBareLf = true;
      return;
    }
    let position = 0;
    let nextTab = -2;
    let nextSpace = -2;
    while (position < end) {
      if (nextTab !== -1 && nextTab < position) nextTab = chunk.indexOf(HTAB, position);
      if (nextSpace !== -1 && nextSpace < position)
        nextSpace = findSpaceProblem(chunk, position, end);
      const problem = earliest(nextTab, nextSpace, end);
      if (problem === -1) break;
      position = this.writeRun(chunk, position, problem, end);
    }
    this.writeSegment(chunk, position, end);
  }

  /**
   * Writes `chunk[position, ...)` up to the WSP run around `at`, then the run as one SP unless a
   * CRLF follows it (section 3.4.4 steps a and b). Returns the offset after the run.
   */
  private writeRun(chunk: Buffer, position: number, at: number, end: number): number {
    let runStart = at;
    while (runStart > position && isWsp(chunk[runStart - 1])) runStart--;
    let runEnd = at;
    while (runEnd < end && isWsp(chunk[runEnd])) runEnd++;
    this.writeSegment(chunk, position, runStart);
    const trailing = chunk[runEnd] === CR && chunk[runEnd + 1] === LF && runEnd + 1 < end;
    if (!trailing) this.writeSegment(SPACE, 0, 1);
    return runEnd;
  }

  /** Writes `chunk[start, end)`, holding back the CRLFs at its end. */
  private writeSegment(chunk: Buffer, start: number, end: number): void {
    let contentEnd = end;
    let crlfs = 0;
    while (
      contentEnd - start >= 2 &&
      chunk[contentEnd - 1] === LF &&
      chunk[contentEnd - 2] === CR
    ) {
      contentEnd -= 2;
      crlfs++;
    }
    if (contentEnd > start) {
      this.flushPending();
      this.sink.update(chunk.subarray(start, contentEnd));
      this.wroteContent = true;
    }
    this.pendingCrlf += crlfs;
  }

  private flushPending(): void {
    while (this.pendingCrlf > 0) {
      const count = Math.min(this.pendingCrlf, CRLF_BLOCK.length / 2);
      this.sink.update(CRLF_BLOCK.subarray(0, count * 2));
      this.pendingCrlf -= count;
    }
  }
}

const CRLF_BLOCK = Buffer.from('\r\n'.repeat(512));

/** Chunks from this size on are scanned with WebAssembly SIMD. */
const WASM_THRESHOLD = 512;
/** The relaxed scan copies this much into WebAssembly memory at a time, so it stays cached. */
const SCAN_BLOCK = 16 * 1024;

/** Returns the smaller of two positions before `end`, or -1 when neither is before it. */
function earliest(a: number, b: number, end: number): number {
  const aValid = a >= 0 && a < end;
  const bValid = b >= 0 && b < end;
  if (aValid && bValid) return Math.min(a, b);
  if (aValid) return a;
  return bValid ? b : -1;
}

/**
 * Returns the index of the first LF in `chunk[1, end)` that no CR precedes, or -1. The byte
 * before the chunk is not known here, so an LF at index 0 is the caller's to check.
 */
export function findBareLf(chunk: Buffer, end: number): number {
  for (let index = chunk.indexOf(LF, 1); index !== -1 && index < end;) {
    if (chunk[index - 1] !== CR) return index;
    index = chunk.indexOf(LF, index + 1);
  }
  return -1;
}

/**
 * Finds the first SP in `chunk[start, end)` that relaxed canonicalization must rewrite: one
 * next to another SP or HTAB (a run), or followed by CR (trailing whitespace). Tabs are found
 * separately with `indexOf`, a memchr. A two-byte `indexOf("  ")` is slow because every single
 * space is a candidate match, so this loop reads only the bytes at even offsets: each pair of
 * adjacent bytes has one, and its neighbours tell whether it belongs to a pair.
 */
function findSpaceProblem(chunk: Buffer, start: number, end: number): number {
  for (let index = start + (start & 1); index < end; index += 2) {
    const byte = chunk[index];
    if (byte === SP) {
      const before = chunk[index - 1];
      if (index > start && (before === SP || before === HTAB)) return index - 1;
      const after = chunk[index + 1];
      if (after === SP || after === HTAB || after === CR) return index;
    } else if (byte === CR && index > start && chunk[index - 1] === SP) {
      return index - 1;
    }
  }
  return -1;
}

/**
 * A sink that counts canonical bytes and forwards at most `limit` of them, for `l=`.
 * `total` is the full canonical length, so a verifier can tell what the limit left unsigned.
 */
export class LimitedSink implements CanonicalSink {
  total = 0;

  constructor(
    private readonly target: CanonicalSink,
    private readonly limit = Number.POSITIVE_INFINITY,
  ) {}

  update(data: Buffer): void {
    const room = this.limit - this.total;
    this.total += data.length;
    if (room <= 0) return;
    this.target.update(room >= data.length ? data : data.subarray(0, room));
  }
}
