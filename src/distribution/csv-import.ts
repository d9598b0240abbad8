/**
 * Streaming CSV import of subscribers. Rows are parsed one at a time with csv-parse and
 * written in batches, so memory stays bounded whatever the file size: duplicates are found
 * by the store (an address already on the list is not inserted), not by a set in memory.
 * Every rejected row is reported with the line number where it starts and the reason.
 */
import type { Readable } from 'node:stream';

import { parse, type CsvError } from 'csv-parse';

import { checkAddress, controlCharacterIn } from './address.js';
import type { NewSubscriber } from './types.js';

export interface ImportReject {
  /** 1-based line number in the file where the row starts. */
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

/** Reasons for the csv-parse errors that a skipped row can carry. */
const CSV_ERROR_REASONS: Record<string, string> = {
  CSV_RECORD_INCONSISTENT_COLUMNS: 'wrong number of fields',
  CSV_RECORD_INCONSISTENT_FIELDS_LENGTH: 'wrong number of fields',
  CSV_INVALID_CLOSING_QUOTE: 'invalid quoting',
  CSV_QUOTE_NOT_CLOSED: 'quoted field not closed',
  CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE: 'invalid quoting',
  CSV_MAX_RECORD_SIZE: 'row too long',
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

  const parser = input.pipe(
    parse({
      bom: true,
      info: true,
      raw: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      trim: true,
      // A row longer than this is not a subscriber; it also bounds the parser's buffer.
      max_record_size: 64 * 1024,
    }),
  );
  parser.on('skip', (error: CsvError) => {
    summary.rows += 1;
    const lines = (error as CsvError & { lines?: number }).lines ?? 0;
    reject({ line: lines, reason: CSV_ERROR_REASONS[error.code] ?? error.message });
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
    if (!columns) {
      columns = readHeader(row.record);
      continue;
    }
    summary.rows += 1;
    const subscriber = toSubscriber(row.record, columns);
    if ('reason' in subscriber) {
      reject({ line, ...subscriber });
      continue;
    }
    batch.push(subscriber);
    batchLines.push(line);
    if (batch.length >= batchSize) await flush();
  }
  if (!columns) throw new Error('CSV input is empty: expected a header row with an email column');
  await flush();
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
  const raw = record[columns.address] ?? '';
  const check = checkAddress(raw);
  if (!check.ok) return { reason: check.reason, address: raw };

  const fields: Record<string, string> = {};
  for (const field of columns.fields) {
    const value = record[field.index];
    if (value !== undefined && value !== '') fields[field.name] = value;
  }
  let name = columns.name >= 0 ? (record[columns.name] ?? '') : '';
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
  const body = row.raw.replace(/^(\r?\n)+/, '').replace(/\r?\n$/, '');
  const breaks = body.match(/\n/g)?.length ?? 0;
  return row.info.lines - breaks;
}
