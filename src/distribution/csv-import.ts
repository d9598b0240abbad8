/**
 * Streaming CSV import of subscribers. Rows are parsed one at a time with csv-parse and
 * written in batches, so memory stays bounded whatever the file size: duplicates are found
 * by the store (an address already on the list is not inserted), not by a set in memory.
 * Every rejected row is reported with the line number where it starts and the reason.
 */
import { randomBytes } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';

import { parse, type CsvError } from 'csv-parse';

import { checkAddress, controlCharacterIn } from './address.js';
import type { NewSubscriber } from './types.js';

export interface ImportReject {
  /**
   * 1-based line number in the file where the row starts, or for a row containing a line
   * longer than `MAX_ROW_BYTES`, the first such line.
   */
  line: number;
  reason: string;
  address?: string;
}

export interface ImportSummary {
  /** Data rows read (the header excluded), rejected ones included. */
  rows: number;
  imported: number;
  duplicates: number;
  rejected: number;
  /** The first `maxReportedRejects` rejects in line order; `onReject` receives all of them. */
  rejects: ImportReject[];
}

export interface ImportOptions {
  /** Writes a batch and returns one id per row, null where the address was already listed. */
  write: (batch: NewSubscriber[]) => Promise<(number | null)[]>;
  batchSize?: number;
  maxReportedRejects?: number;
  onReject?: (reject: ImportReject) => void;
  /** Called after each batch with the running totals, for progress output. */
  onProgress?: (summary: ImportSummary) => void;
}

/** Header names accepted for the address column, compared case-insensitively. */
const ADDRESS_COLUMNS = ['email', 'address', 'e-mail', 'email_address'];
const NAME_COLUMNS = ['name', 'full_name'];

/**
 * Maximum size of a row in UTF-8 bytes, counting the line breaks inside quoted fields but not
 * the one that ends the row. Longer rows are rejected.
 */
export const MAX_ROW_BYTES = 64 * 1024;
const ROW_TOO_LONG = 'row longer than 64 KiB';

/**
 * Limit of the parser's own record buffer. It stays above `MAX_ROW_BYTES` because csv-parse 7
 * drops the rest of the current chunk when it raises CSV_MAX_RECORD_SIZE, so it is only a
 * memory bound for a quoted field that is never closed. Rows between the two limits are
 * parsed and then rejected by their raw size.
 */
const PARSER_MAX_RECORD_BYTES = 1024 * 1024;

/** Reasons for the csv-parse errors that a skipped row can carry. */
const CSV_ERROR_REASONS: Record<string, string> = {
  CSV_RECORD_INCONSISTENT_COLUMNS: 'wrong number of fields',
  CSV_RECORD_INCONSISTENT_FIELDS_LENGTH: 'wrong number of fields',
  CSV_INVALID_CLOSING_QUOTE: 'invalid quoting',
  CSV_QUOTE_NOT_CLOSED: 'quoted field not closed',
  CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE: 'invalid quoting',
  CSV_MAX_RECORD_SIZE: 'row longer than 1 MiB, probably a quoted field that is not closed',
};

interface ParsedRow {
  record: string[];
  info: { lines: number };
  raw: string;
}

/** Imports subscribers from CSV text with a header row. */
export async function importSubscribersCsv(
  input: Readable,
  options: ImportOptions,
): Promise<ImportSummary> {
  const batchSize = options.batchSize ?? 1000;
  const maxReported = options.maxReportedRejects ?? 1000;
  const summary: ImportSummary = { rows: 0, imported: 0, duplicates: 0, rejected: 0, rejects: [] };

  const reject = (item: ImportReject): void => {
    summary.rejected += 1;
    if (summary.rejects.length < maxReported) summary.rejects.push(item);
    options.onReject?.(item);
  };

  const lineLimit = new LineLengthLimit(MAX_ROW_BYTES);
  const parser = input.pipe(lineLimit).pipe(
    parse({
      bom: true,
      info: true,
      raw: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      // With strict quoting, csv-parse 7 stays inside the quoted field after an invalid closing
      // quote, so the rows after it are lost. Relaxed, the quotes of such a field are kept as
      // text and the next row parses normally. RFC 4180 rows parse the same either way.
      relax_quotes: true,
      // Only left trimming is done here (so a quote after spaces still opens a field), because
      // with rtrim csv-parse raises CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE on a relaxed field,
      // and that error also drops the rest of the chunk. `toSubscriber` trims every value.
      // NOTE: spaces after a closing quote, as in `"Ann" ,`, now leave the quotes in the value.
      ltrim: true,
      max_record_size: PARSER_MAX_RECORD_BYTES,
    }),
  );

  // Skip events arrive while earlier rows still wait in the parser's output, so a placeholder
  // carries its own line number instead of relying on the order in which rows are read.
  const placeholderNumbers = new RegExp(`${lineLimit.placeholderPrefix}(\\d+)`, 'g');
  const takeOverlongLine = (raw: string): number | undefined => {
    if (!raw.includes(lineLimit.placeholderPrefix)) return undefined;
    let first: number | undefined;
    for (const match of raw.matchAll(placeholderNumbers)) {
      const line = Number(match[1]);
      lineLimit.overlong.delete(line);
      first ??= line;
    }
    return first;
  };

  let lastMaxSizeRecords = -1;
  parser.on('skip', (error: CsvError & { lines?: number; records?: number }, raw?: string) => {
    // After CSV_MAX_RECORD_SIZE the parser raises it again for every chunk of the same field.
    if (error.code === 'CSV_MAX_RECORD_SIZE') {
      if (error.records === lastMaxSizeRecords) return;
      lastMaxSizeRecords = error.records ?? -1;
    }
    summary.rows += 1;
    const overlongLine = takeOverlongLine(raw ?? '');
    if (overlongLine !== undefined) {
      reject({ line: overlongLine, reason: ROW_TOO_LONG });
      return;
    }
    const reason = CSV_ERROR_REASONS[error.code] ?? error.message;
    reject({ line: error.lines ?? 0, reason });
  });

  let columns: Columns | undefined;
  let batch: NewSubscriber[] = [];
  let batchLines: number[] = [];

  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const ids = await options.write(batch);
    ids.forEach((id, index) => {
      if (id === null) {
        summary.duplicates += 1;
        reject({
          line: batchLines[index]!,
          reason: 'duplicate address',
          address: batch[index]!.address,
        });
      } else {
        summary.imported += 1;
      }
    });
    batch = [];
    batchLines = [];
    options.onProgress?.(summary);
  };

  for await (const row of parser as AsyncIterable<ParsedRow>) {
    const line = startLine(row);
    const overlongLine = takeOverlongLine(row.raw);
    if (!columns) {
      if (overlongLine !== undefined) {
        throw new Error(`CSV header on line ${overlongLine} is longer than 64 KiB`);
      }
      columns = readHeader(row.record);
      continue;
    }
    summary.rows += 1;
    if (overlongLine !== undefined) {
      reject({ line: overlongLine, reason: ROW_TOO_LONG });
      continue;
    }
    if (bytesOver(rowText(row), MAX_ROW_BYTES)) {
      reject({ line, reason: ROW_TOO_LONG });
      continue;
    }
    const subscriber = toSubscriber(row.record, columns);
    if ('reason' in subscriber) {
      reject({ line, ...subscriber });
      continue;
    }
    batch.push(subscriber);
    batchLines.push(line);
    if (batch.length >= batchSize) await flush();
  }
  const [firstOverlong] = lineLimit.overlong;
  if (firstOverlong !== undefined && !columns) {
    throw new Error(`CSV header on line ${firstOverlong} is longer than 64 KiB`);
  }
  if (!columns) throw new Error('CSV input is empty: expected a header row with an email column');
  await flush();
  // A placeholder the parser dropped without a row or an error still gets its reject.
  for (const overlongLine of lineLimit.overlong) {
    summary.rows += 1;
    reject({ line: overlongLine, reason: ROW_TOO_LONG });
  }
  // Parse errors are reported while earlier rows are still being written, and duplicates
  // only when their batch is written, so the report is put back in line order.
  summary.rejects.sort((a, b) => a.line - b.line);
  return summary;
}

interface Columns {
  address: number;
  name: number;
  /** Every other column, by header name. */
  fields: { index: number; name: string }[];
  count: number;
}

function readHeader(header: string[]): Columns {
  const names = header.map((name) => name.trim().toLowerCase());
  const address = names.findIndex((name) => ADDRESS_COLUMNS.includes(name));
  if (address < 0) {
    throw new Error(
      `CSV header has no address column: expected one of ${ADDRESS_COLUMNS.join(', ')}, got ${header.join(', ')}`,
    );
  }
  const name = names.findIndex((name) => NAME_COLUMNS.includes(name));
  const fields = names
    .map((field, index) => ({ index, name: field.replace(/[^a-z0-9_]+/g, '_') }))
    .filter((field) => field.index !== address && field.index !== name && field.name !== '');
  return { address, name, fields, count: header.length };
}

function toSubscriber(
  record: string[],
  columns: Columns,
): NewSubscriber | { reason: string; address?: string } {
  const values = record.map((value) => value.trim());
  const raw = values[columns.address] ?? '';
  const check = checkAddress(raw);
  if (!check.ok) return { reason: check.reason, address: raw };

  const fields: Record<string, string> = {};
  for (const field of columns.fields) {
    const value = values[field.index];
    if (value !== undefined && value !== '') fields[field.name] = value;
  }
  let name = columns.name >= 0 ? (values[columns.name] ?? '') : '';
  for (const value of [name, ...Object.values(fields)]) {
    const control = controlCharacterIn(value);
    if (control) return { reason: `control character ${control} in a field`, address: raw };
  }
  if (name === '') name = [fields.first_name, fields.last_name].filter(Boolean).join(' ');
  return { address: check.address, name, fields };
}

/**
 * Line where a row starts: csv-parse reports the line where it ends, and the raw text of a row
 * carries the empty lines skipped before it and its own line break.
 */
function startLine(row: ParsedRow): number {
  const breaks = rowText(row).match(/\n/g)?.length ?? 0;
  return row.info.lines - breaks;
}

/**
 * Text of a row without the empty lines skipped before it and its final line break. With CRLF
 * records, csv-parse 7 puts the CR at the end of one raw text and the LF at the start of the next.
 */
function rowText(row: ParsedRow): string {
  return row.raw.replace(/^(\r?\n)+/, '').replace(/(\r\n|\r|\n)$/, '');
}

/** Tells whether the UTF-8 size of `text` is above `limit` bytes. */
function bytesOver(text: string, limit: number): boolean {
  // A UTF-16 code unit takes one to three bytes in UTF-8.
  if (text.length > limit) return true;
  if (text.length * 3 <= limit) return false;
  return Buffer.byteLength(text) > limit;
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * Transform that replaces the content of every physical line longer than `limit` bytes with a
 * placeholder, keeping the line break, so the parser never buffers a long line and line numbers
 * stay right. A line break is CRLF, LF or a lone CR. At most `limit` bytes of the current line
 * are held back, whatever the line length.
 */
class LineLengthLimit extends Transform {
  /**
   * Start of the text that replaces a line, followed by the line number: letters and digits
   * only, so csv-parse reads it as a plain field. The random part keeps it out of real data.
   */
  readonly placeholderPrefix = `HeraldOverlongLine${randomBytes(8).toString('hex')}L`;
  /** 1-based numbers of the replaced lines whose placeholder has not been read yet, in order. */
  readonly overlong = new Set<number>();

  private line = 1;
  /** Content of the current line seen so far, unless it is already over the limit. */
  private lineContent: Buffer[] = [];
  private lineContentBytes = 0;
  private dropping = false;
  private lastWasCr = false;

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const output: Buffer[] = [];
    const breaks = new LineBreakFinder(chunk);
    let start = 0;
    while (start < chunk.length) {
      const lineBreak = breaks.next(start);
      const end = lineBreak < 0 ? chunk.length : lineBreak;
      if (end > start) {
        this.addContent(chunk.subarray(start, end));
        this.lastWasCr = false;
      }
      if (lineBreak < 0) break;

      const byte = chunk[lineBreak]!;
      // The LF of a CRLF ends no line of its own: the CR ended it.
      if (byte === CR || !this.lastWasCr) this.endLine(output);
      output.push(chunk.subarray(lineBreak, lineBreak + 1));
      this.lastWasCr = byte === CR;
      start = lineBreak + 1;
    }
    // Held content from this chunk is copied because the source may reuse the chunk's memory.
    const last = this.lineContent.length - 1;
    if (last >= 0 && this.lineContent[last]!.buffer === chunk.buffer) {
      this.lineContent[last] = Buffer.from(this.lineContent[last]!);
    }
    if (output.length > 0) this.push(Buffer.concat(output));
    callback();
  }

  override _flush(callback: TransformCallback): void {
    const output: Buffer[] = [];
    if (this.dropping || this.lineContentBytes > 0) this.endLine(output);
    if (output.length > 0) this.push(Buffer.concat(output));
    callback();
  }

  private addContent(content: Buffer): void {
    if (this.dropping) return;
    if (this.lineContentBytes + content.length > this.limit) {
      this.lineContent = [];
      this.lineContentBytes = 0;
      this.dropping = true;
      this.overlong.add(this.line);
      return;
    }
    this.lineContent.push(content);
    this.lineContentBytes += content.length;
  }

  /** Appends the current line's content, or the placeholder if it was too long, to `output`. */
  private endLine(output: Buffer[]): void {
    if (this.dropping) output.push(Buffer.from(`${this.placeholderPrefix}${this.line}`));
    else output.push(...this.lineContent);
    this.lineContent = [];
    this.lineContentBytes = 0;
    this.dropping = false;
    this.line += 1;
  }
}

/** Finder of CR and LF bytes in a chunk, scanning it at most once for each of the two. */
class LineBreakFinder {
  private nextCr = -1;
  private nextLf = -1;

  constructor(private readonly chunk: Buffer) {}

  /** Returns the index of the next CR or LF at or after `from`, or -1. */
  next(from: number): number {
    if (this.nextCr !== Infinity && this.nextCr < from) this.nextCr = this.find(CR, from);
    if (this.nextLf !== Infinity && this.nextLf < from) this.nextLf = this.find(LF, from);
    const found = Math.min(this.nextCr, this.nextLf);
    return found === Infinity ? -1 : found;
  }

  private find(byte: number, from: number): number {
    const index = this.chunk.indexOf(byte, from);
    return index < 0 ? Infinity : index;
  }
}
