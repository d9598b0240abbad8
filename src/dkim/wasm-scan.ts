/**
 * WebAssembly SIMD scans for body canonicalization, 16 bytes per step. JavaScript reads bytes
 * one at a time, and a two-byte `Buffer#indexOf` stops at every single space. One pass of these
 * scans finds both the whitespace runs of relaxed canonicalization and the bare LF line endings.
 *
 * The module exports `memory` and two functions, both returning the first matching index in
 * `[start, end)` or -1:
 *
 *   scan(start, end)         relaxed: HTAB; SP followed by a byte <= 0x20 (SP, HTAB, CR, LF or
 *                            a control byte); or a byte other than CR followed by LF
 *   findBareLf(start, end)   simple: a byte other than CR followed by LF
 *
 * A match for "followed by LF" is the index before the bare LF. Neither function looks at the
 * byte before `start`, so an LF at `start` is the caller's to check. SP followed by a control
 * byte is a false match that relaxed canonicalization rewrites to the same single SP; the test
 * `<= 0x20` takes one comparison where SP, HTAB and CR take three.
 *
 * The module is assembled below from named opcodes (WebAssembly core specification 2.0,
 * section 5, and its fixed-width SIMD opcodes), so its code can be read and changed here.
 */

/** Chunks larger than this are scanned in JavaScript, so the module's memory stays bounded. */
export const MAX_WASM_CHUNK = 16 * 1024 * 1024;
const PAGE = 65536;

// Value types and control.
const I32 = 0x7f;
const V128 = 0x7b;
const EMPTY_BLOCK = 0x40;
const BLOCK = 0x02;
const LOOP = 0x03;
const IF = 0x04;
const END = 0x0b;
const BR = 0x0c;
const BR_IF = 0x0d;
const RETURN = 0x0f;
// Locals, memory and i32 arithmetic.
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const I32_LOAD8_U = 0x2d;
const I32_CONST = 0x41;
const I32_EQ = 0x46;
const I32_NE = 0x47;
const I32_LT_S = 0x48;
const I32_GT_S = 0x4a;
const I32_LE_U = 0x4d;
const I32_GE_S = 0x4e;
const I32_ADD = 0x6a;
const I32_AND = 0x71;
const I32_OR = 0x72;
const I32_CTZ = 0x68;
// SIMD instructions, each the prefix 0xfd followed by its number.
const SIMD = 0xfd;
const V128_LOAD = 0x00;
const I8X16_SPLAT = 0x0f;
const I8X16_EQ = 0x23;
const I8X16_LE_U = 0x2a;
const V128_AND = 0x4e;
const V128_ANDNOT = 0x4f;
const V128_OR = 0x50;
const V128_ANY_TRUE = 0x53;
const I8X16_BITMASK = 0x64;

const TAB = 9;
const LF = 10;
const CR = 13;
const SP = 32;

/** Unsigned LEB128, as the binary format writes sizes, counts and SIMD opcode numbers. */
function unsigned(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  do {
    const byte = rest & 0x7f;
    rest >>>= 7;
    bytes.push(rest === 0 ? byte : byte | 0x80);
  } while (rest !== 0);
  return bytes;
}

/** Signed LEB128 for the small constants used here (-64 to 63 fit one byte). */
function signed(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  for (;;) {
    const byte = rest & 0x7f;
    rest >>= 7;
    const done = (rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0);
    bytes.push(done ? byte : byte | 0x80);
    if (done) return bytes;
  }
}

function vector(items: number[][]): number[] {
  return [...unsigned(items.length), ...items.flat()];
}

function section(id: number, content: number[]): number[] {
  return [id, ...unsigned(content.length), ...content];
}

function name(text: string): number[] {
  return vector([...Buffer.from(text, 'ascii')].map((byte) => [byte]));
}

const get = (local: number) => [LOCAL_GET, local];
const set = (local: number) => [LOCAL_SET, local];
const constant = (value: number) => [I32_CONST, ...signed(value)];
const simd = (op: number) => [SIMD, ...unsigned(op)];
/** `v128.load` at the address on the stack plus `offset`, alignment 1. */
const load128 = (offset: number) => [...simd(V128_LOAD), 0, ...unsigned(offset)];
const load8 = (offset: number) => [I32_LOAD8_U, 0, ...unsigned(offset)];
const splat = (byte: number) => [...constant(byte), ...simd(I8X16_SPLAT)];

// Locals of both functions: the two parameters, then these.
const START = 0;
const END_INDEX = 1;
const INDEX = 2;
const BYTE = 3;
const NEXT = 4;
const MASK = 5;
const VALUE = 6;
const FOLLOWING = 7;
const SPLAT_TAB = 8;
const SPLAT_LF = 9;
const SPLAT_CR = 10;
const SPLAT_SP = 11;
const SECOND_MASK = 12;

/** Loads the 16 bytes at `INDEX + offset` into `VALUE` and the 16 after each into `FOLLOWING`. */
const loadLanes = (offset: number) => [
  ...get(INDEX),
  ...load128(offset),
  ...set(VALUE),
  ...get(INDEX),
  ...load128(offset + 1),
  ...set(FOLLOWING),
];

/** Pushes the lane mask "a byte other than CR followed by LF" for `VALUE` and `FOLLOWING`. */
const bareLfMask = [
  ...get(FOLLOWING),
  ...get(SPLAT_LF),
  ...simd(I8X16_EQ),
  ...get(VALUE),
  ...get(SPLAT_CR),
  ...simd(I8X16_EQ),
  ...simd(V128_ANDNOT),
];

/** Pushes the lane mask of the relaxed matches, bare LF included. */
const relaxedMask = [
  ...get(VALUE),
  ...get(SPLAT_TAB),
  ...simd(I8X16_EQ),
  ...get(VALUE),
  ...get(SPLAT_SP),
  ...simd(I8X16_EQ),
  ...get(FOLLOWING),
  ...get(SPLAT_SP),
  ...simd(I8X16_LE_U),
  ...simd(V128_AND),
  ...simd(V128_OR),
  ...bareLfMask,
  ...simd(V128_OR),
];

/** Returns `base + offset` plus the first set lane of `mask`. */
const returnFirstLane = (mask: number, offset: number) => [
  ...get(INDEX),
  ...constant(offset),
  I32_ADD,
  ...get(mask),
  ...simd(I8X16_BITMASK),
  I32_CTZ,
  I32_ADD,
  RETURN,
];

/**
 * Builds the body of a scan function. The first loop tests 32 positions per step and the second 16,
 * each while the last following byte it reads is before `end`. The byte loop finishes the rest:
 * `scalarMatch` leaves 1 on the stack when `BYTE` at `INDEX`, with `NEXT` the following byte or
 * -1 at the end, is a match.
 */
function scanBody(mask: number[], scalarMatch: number[]): number[] {
  return [
    ...splat(TAB),
    ...set(SPLAT_TAB),
    ...splat(LF),
    ...set(SPLAT_LF),
    ...splat(CR),
    ...set(SPLAT_CR),
    ...splat(SP),
    ...set(SPLAT_SP),
    ...get(START),
    ...set(INDEX),
    BLOCK,
    EMPTY_BLOCK,
    LOOP,
    EMPTY_BLOCK,
    // Leave the loop when index + 33 > end.
    ...get(INDEX),
    ...constant(33),
    I32_ADD,
    ...get(END_INDEX),
    I32_GT_S,
    BR_IF,
    1,
    ...loadLanes(0),
    ...mask,
    ...set(MASK),
    ...loadLanes(16),
    ...mask,
    LOCAL_TEE,
    SECOND_MASK,
    ...get(MASK),
    ...simd(V128_OR),
    ...simd(V128_ANY_TRUE),
    IF,
    EMPTY_BLOCK,
    ...get(MASK),
    ...simd(V128_ANY_TRUE),
    IF,
    EMPTY_BLOCK,
    ...returnFirstLane(MASK, 0),
    END,
    ...returnFirstLane(SECOND_MASK, 16),
    END,
    ...get(INDEX),
    ...constant(32),
    I32_ADD,
    ...set(INDEX),
    BR,
    0,
    END,
    END,
    BLOCK,
    EMPTY_BLOCK,
    LOOP,
    EMPTY_BLOCK,
    // Leave the loop when index + 17 > end.
    ...get(INDEX),
    ...constant(17),
    I32_ADD,
    ...get(END_INDEX),
    I32_GT_S,
    BR_IF,
    1,
    ...loadLanes(0),
    ...mask,
    LOCAL_TEE,
    MASK,
    ...simd(V128_ANY_TRUE),
    IF,
    EMPTY_BLOCK,
    ...returnFirstLane(MASK, 0),
    END,
    ...get(INDEX),
    ...constant(16),
    I32_ADD,
    ...set(INDEX),
    BR,
    0,
    END,
    END,
    BLOCK,
    EMPTY_BLOCK,
    LOOP,
    EMPTY_BLOCK,
    ...get(INDEX),
    ...get(END_INDEX),
    I32_GE_S,
    BR_IF,
    1,
    ...get(INDEX),
    ...load8(0),
    ...set(BYTE),
    // NEXT = index + 1 < end ? byte(index + 1) : -1
    ...constant(-1),
    ...set(NEXT),
    ...get(INDEX),
    ...constant(1),
    I32_ADD,
    ...get(END_INDEX),
    I32_LT_S,
    IF,
    EMPTY_BLOCK,
    ...get(INDEX),
    ...load8(1),
    ...set(NEXT),
    END,
    ...scalarMatch,
    IF,
    EMPTY_BLOCK,
    ...get(INDEX),
    RETURN,
    END,
    ...get(INDEX),
    ...constant(1),
    I32_ADD,
    ...set(INDEX),
    BR,
    0,
    END,
    END,
    ...constant(-1),
  ];
}

/** Leaves 1 when `NEXT` is LF and `BYTE` is not CR. */
const scalarBareLf = [
  ...get(NEXT),
  ...constant(LF),
  I32_EQ,
  ...get(BYTE),
  ...constant(CR),
  I32_NE,
  I32_AND,
];

/** Leaves 1 for HTAB, for SP followed by a byte <= 0x20, or before a bare LF. */
const scalarRelaxed = [
  ...get(BYTE),
  ...constant(TAB),
  I32_EQ,
  ...get(BYTE),
  ...constant(SP),
  I32_EQ,
  ...get(NEXT),
  ...constant(SP),
  I32_LE_U,
  I32_AND,
  I32_OR,
  ...scalarBareLf,
  I32_OR,
];

function assemble(): Uint8Array {
  const functionType = [0x60, ...vector([[I32], [I32]]), ...vector([[I32]])];
  // INDEX, BYTE and NEXT, then the eight v128 locals from MASK to SECOND_MASK.
  const locals = vector([
    [3, I32],
    [8, V128],
  ]);
  const code = (body: number[]) => {
    const content = [...locals, ...body, END];
    return [...unsigned(content.length), ...content];
  };
  const module = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector([functionType])),
    ...section(3, vector([[0], [0]])),
    ...section(5, vector([[0x00, 1]])),
    ...section(
      7,
      vector([
        [...name('memory'), 0x02, 0],
        [...name('scan'), 0x00, 0],
        [...name('findBareLf'), 0x00, 1],
      ]),
    ),
    ...section(
      10,
      vector([
        code(scanBody(relaxedMask, scalarRelaxed)),
        code(scanBody(bareLfMask, scalarBareLf)),
      ]),
    ),
  ];
  return Uint8Array.from(module);
}

/** The parts of the WebAssembly API used here (the project's `lib` setting omits its types). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

interface ScanExports {
  memory: WasmMemory;
  scan: (start: number, end: number) => number;
  findBareLf: (start: number, end: number) => number;
}

let exports: ScanExports | null | undefined;
let view: Uint8Array | undefined;

/** Instantiates the module once; null where WebAssembly SIMD is not available. */
function load(): ScanExports | null {
  if (exports !== undefined) return exports;
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  try {
    if (api === undefined) throw new Error('WebAssembly is not available');
    const instance = new api.Instance(new api.Module(assemble()), {});
    exports = instance.exports as ScanExports;
  } catch {
    exports = null;
  }
  return exports;
}

/** Returns true when the WebAssembly scans can run here. */
export function scanAvailable(): boolean {
  return load() !== null;
}

/** The scans over the chunk most recently copied into the module's memory. */
export interface LoadedChunk {
  /** Returns the first relaxed match in `[start, end)`, or -1. */
  scan(start: number, end: number): number;
  /** Returns the index before the first bare LF in `[start, end)`, or -1. */
  findBareLf(start: number, end: number): number;
}

/**
 * Copies `chunk[start, end)` into the module's memory, where the scans see it from index 0.
 * Returns null when the range is too large or WebAssembly is not available, and the caller then
 * scans in JavaScript. Only one range is loaded at a time: loading another replaces it.
 */
export function loadChunk(chunk: Buffer, end: number, start = 0): LoadedChunk | null {
  const module = load();
  const length = end - start;
  if (module === null || length > MAX_WASM_CHUNK) return null;
  const needed = Math.ceil(length / PAGE) - module.memory.buffer.byteLength / PAGE;
  if (needed > 0) module.memory.grow(needed);
  // Growing replaces the memory's ArrayBuffer, so the cached view is rebuilt after it.
  if (view?.buffer !== module.memory.buffer) view = new Uint8Array(module.memory.buffer);
  view.set(start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end));
  return module;
}
