import { Readable } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { checkAddress } from './address.js';
import { importSubscribersCsv, MAX_ROW_BYTES, type ImportReject } from './csv-import.js';
import type { NewSubscriber } from './types.js';

/** A write function that behaves like the store: the first row of each address wins. */
function memoryList(): {
  rows: NewSubscriber[];
  write: (batch: NewSubscriber[]) => Promise<(number | null)[]>;
} {
  const seen = new Set<string>();
  const rows: NewSubscriber[] = [];
  return {
    rows,
    write: (batch) =>
      Promise.resolve(
        batch.map((row) => {
          const key = row.address.toLowerCase();
          if (seen.has(key)) return null;
          seen.add(key);
          rows.push(row);
          return rows.length;
        }),
      ),
  };
}

describe('checkAddress', () => {
  it.each([
    ['ann@example.org', true],
    ['first.last+tag@sub.example.co.uk', true],
    ['no-at-sign.example.org', false],
    ['two@@example.org', false],
    ['dot..dot@example.org', false],
    ['.lead@example.org', false],
    ['user@localhost', false],
    ['user@-bad.example', false],
    ['user@192.0.2.1', false],
    ['space in@example.org', false],
    [`${'a'.repeat(65)}@example.org`, false],
  ])('%s valid=%s', (address, valid) => {
    expect(checkAddress(address).ok).toBe(valid);
  });
});

describe('importSubscribersCsv', () => {
  it('reports malformed rows with their line numbers and keeps valid rows', async () => {
    const csv = [
      'email,name,city', // line 1
      'ann@example.org,Ann,Oslo', // 2
      'not-an-address,Bob,Rome', // 3
      'cleo@example.org,Cleo', // 4: one field short
      'dan@example.org,"Dan ""D""",Lima', // 5
      'ANN@example.org,Ann again,Oslo', // 6: duplicate of line 2
      '"eve@example.org","Eve', // 7: multi-line field starts here
      'Smith",Paris', // 8
      'fay@example.org,Fay,Kyiv', // 9
      '', // 10: empty lines are skipped
      ',NoAddress,Nowhere', // 11
    ].join('\n');
    const list = memoryList();
    const rejects: ImportReject[] = [];
    const summary = await importSubscribersCsv(Readable.from([csv]), {
      write: list.write,
      batchSize: 2,
      onReject: (reject) => rejects.push(reject),
    });

    expect(list.rows.map((row) => row.address)).toEqual([
      'ann@example.org',
      'dan@example.org',
      'eve@example.org',
      'fay@example.org',
    ]);
    expect(list.rows[1]!.name).toBe('Dan "D"');
    expect(list.rows[2]!.name).toBe('Eve\nSmith');
    expect(list.rows[0]!.fields).toEqual({ city: 'Oslo' });
    expect(rejects.map((reject) => [reject.line, reject.reason])).toEqual(
      expect.arrayContaining([
        [3, 'address has no @'],
        [4, 'wrong number of fields'],
        [6, 'duplicate address'],
        [11, 'missing address'],
      ]),
    );
    expect(rejects).toHaveLength(4);
    expect(summary).toMatchObject({ rows: 8, imported: 4, duplicates: 1, rejected: 4 });
  });

  it('rejects control characters in names and fields', async () => {
    const csv = [
      'email,name,city',
      'ann@example.org,Ann,Oslo',
      'bob@example.org,Bo\u0000b,Riga',
      'cleo@example.org,Cleo,Tal\u001binn',
      'dan@example.org,"Dan\tDoe",Bergen',
    ].join('\n');
    const list = memoryList();
    const summary = await importSubscribersCsv(Readable.from([csv]), { write: list.write });
    expect(list.rows.map((row) => row.address)).toEqual(['ann@example.org', 'dan@example.org']);
    expect(summary.rejects).toEqual([
      { line: 3, reason: 'control character U+0000 in a field', address: 'bob@example.org' },
      { line: 4, reason: 'control character U+001B in a field', address: 'cleo@example.org' },
    ]);
  });

  it('accepts a byte order mark and CRLF line endings', async () => {
    const csv = '\ufeffEmail,First_Name,Last_Name\r\nann@example.org,Ann,Lee\r\n';
    const list = memoryList();
    const summary = await importSubscribersCsv(Readable.from([csv]), { write: list.write });
    expect(summary.imported).toBe(1);
    expect(list.rows[0]).toEqual({
      address: 'ann@example.org',
      name: 'Ann Lee',
      fields: { first_name: 'Ann', last_name: 'Lee' },
    });
  });

  it('rejects a header without an address column', async () => {
    const list = memoryList();
    await expect(
      importSubscribersCsv(Readable.from(['name,city\nAnn,Oslo\n']), { write: list.write }),
    ).rejects.toThrow(/no address column/);
  });

  it('streams a large input in bounded batches', async () => {
    const rows = 20_000;
    function* generate(): Generator<string> {
      yield 'email,name\n';
      for (let i = 0; i < rows; i += 1000) {
        let chunk = '';
        for (let j = i; j < i + 1000; j++) chunk += `user${j}@example.org,User ${j}\n`;
        yield chunk;
      }
    }
    let largestBatch = 0;
    let written = 0;
    const summary = await importSubscribersCsv(Readable.from(generate()), {
      batchSize: 500,
      write: (batch) => {
        largestBatch = Math.max(largestBatch, batch.length);
        written += batch.length;
        return Promise.resolve(batch.map((_, index) => written + index));
      },
    });
    expect(summary.imported).toBe(rows);
    expect(largestBatch).toBe(500);
  });

  it('rejects an overlong row once and keeps the rows after it', async () => {
    const csv =
      'email,name\n' +
      `long@members.test,${'A'.repeat(200_000)}\n` +
      'after1@members.test,After\n' +
      'after2@members.test,After\n';
    // Small chunks make the parser meet the long line many times, as a file read would.
    const chunks: string[] = [];
    for (let at = 0; at < csv.length; at += 4096) chunks.push(csv.slice(at, at + 4096));
    const list = memoryList();
    const rejects: ImportReject[] = [];
    const summary = await importSubscribersCsv(Readable.from(chunks), {
      write: list.write,
      onReject: (reject) => rejects.push(reject),
    });
    expect(rejects).toEqual([{ line: 2, reason: 'row longer than 64 KiB' }]);
    expect(list.rows.map((row) => row.address)).toEqual([
      'after1@members.test',
      'after2@members.test',
    ]);
    expect(summary).toMatchObject({ rows: 3, imported: 2, rejected: 1 });
  });

  it('bounds line length at the limit in every line ending', async () => {
    // Line 3 is exactly at the limit or one byte over it, in whole and in one-byte chunks.
    const atLimit = MAX_ROW_BYTES - 'x@members.test,'.length;
    for (const ending of ['\n', '\r\n', '\r']) {
      for (const [nameLength, oneByteChunks] of [
        [atLimit, false],
        [atLimit, true],
        [atLimit + 1, false],
        [atLimit + 1, true],
      ] as const) {
        const lines = [
          'email,name',
          'a@members.test,A',
          `x@members.test,${'N'.repeat(nameLength)}`,
          'b@members.test,"B',
          'B"',
          'c@members.test,C',
        ];
        const csv = lines.join(ending) + ending;
        // One-byte chunks split every CRLF and the limit itself across chunks.
        const chunks = oneByteChunks
          ? Array.from(Buffer.from(csv), (byte) => Buffer.of(byte))
          : [csv];
        const list = memoryList();
        const summary = await importSubscribersCsv(Readable.from(chunks), { write: list.write });
        const label = `${JSON.stringify(ending)} ${nameLength} ${oneByteChunks}`;
        const over = nameLength > atLimit;
        const expected = over
          ? ['a@members.test', 'b@members.test', 'c@members.test']
          : ['a@members.test', 'x@members.test', 'b@members.test', 'c@members.test'];
        expect(
          list.rows.map((row) => row.address),
          label,
        ).toEqual(expected);
        expect(summary.rejects, label).toEqual(
          over ? [{ line: 3, reason: 'row longer than 64 KiB' }] : [],
        );
        const multiLine = list.rows.find((row) => row.address === 'b@members.test');
        expect(multiLine?.name, label).toBe(`B${ending}B`);
      }
    }
  });

  it('reports an overlong line inside a quoted field once', async () => {
    const csv = [
      'email,name,note',
      'a@members.test,A,"starts here', // line 2
      'N'.repeat(MAX_ROW_BYTES + 10), // 3
      'ends here"',
      'b@members.test,B,fine',
    ].join('\n');
    const list = memoryList();
    const summary = await importSubscribersCsv(Readable.from([csv]), { write: list.write });
    expect(summary.rejects).toEqual([{ line: 3, reason: 'row longer than 64 KiB' }]);
    expect(list.rows.map((row) => row.address)).toEqual(['b@members.test']);
  });

  it('rejects a multi-line row over the limit', async () => {
    const half = 'N'.repeat(MAX_ROW_BYTES / 2);
    const csv = `email,name\na@members.test,"${half}\n${half}"\nb@members.test,B\n`;
    const list = memoryList();
    const summary = await importSubscribersCsv(Readable.from([csv]), { write: list.write });
    expect(summary.rejects).toEqual([{ line: 2, reason: 'row longer than 64 KiB' }]);
    expect(list.rows.map((row) => row.address)).toEqual(['b@members.test']);
  });

  it('rejects an overlong header', async () => {
    const list = memoryList();
    const header = `email,${'n'.repeat(MAX_ROW_BYTES)}\n`;
    await expect(
      importSubscribersCsv(Readable.from([header, 'a@members.test,A\n']), { write: list.write }),
    ).rejects.toThrow('CSV header on line 1 is longer than 64 KiB');
  });

  it('streams a long single line with bounded memory', async () => {
    const lineBytes = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 'A');
    function* generate(): Generator<Buffer> {
      yield Buffer.from('email,name\nlong@members.test,');
      for (let sent = 0; sent < lineBytes; sent += chunk.length) yield chunk;
      yield Buffer.from('\nafter@members.test,After\n');
    }
    const list = memoryList();
    const before = process.memoryUsage().rss;
    let peak = before;
    const input = Readable.from(generate()).on('data', () => {
      peak = Math.max(peak, process.memoryUsage().rss);
    });
    const summary = await importSubscribersCsv(input, { write: list.write });
    expect(summary.rejects).toEqual([{ line: 2, reason: 'row longer than 64 KiB' }]);
    expect(list.rows.map((row) => row.address)).toEqual(['after@members.test']);
    // Buffering the line would take more than 256 MiB, while the pipeline keeps a few chunks.
    expect(peak - before).toBeLessThan(64 * 1024 * 1024);
  });

  it('numbers overlong lines read out of order', async () => {
    // The parser raises the skip for line 6 before the row of lines 2 to 5 is read.
    const long = 'N'.repeat(MAX_ROW_BYTES + 1);
    const csv = [
      'email,note',
      'a@members.test,"one', // line 2
      long, // 3
      long, // 4
      'two"',
      long, // 6: a single field, so a wrong number of fields
      'b@members.test,B',
    ].join('\n');
    const list = memoryList();
    const summary = await importSubscribersCsv(Readable.from([csv]), { write: list.write });
    expect(summary.rejects).toEqual([
      { line: 3, reason: 'row longer than 64 KiB' },
      { line: 6, reason: 'row longer than 64 KiB' },
    ]);
    expect(summary.rows).toBe(3);
    expect(list.rows.map((row) => row.address)).toEqual(['b@members.test']);
  });

  it('reports an unclosed quote over 1 MiB once', async () => {
    // The quote opened on line 3 swallows every later line, so the parser's limit stops it.
    let csv = 'email,name\na@members.test,A\nb@members.test,"B\n';
    for (let i = 0; i < 100_000; i++) csv += `u${i}@members.test,User ${i}\n`;
    const chunks: string[] = [];
    for (let at = 0; at < csv.length; at += 65_536) chunks.push(csv.slice(at, at + 65_536));
    const list = memoryList();
    const summary = await importSubscribersCsv(Readable.from(chunks), { write: list.write });
    expect(summary.rejects.map((reject) => reject.reason)).toEqual([
      'row longer than 1 MiB, probably a quoted field that is not closed',
    ]);
    expect(list.rows.map((row) => row.address)).toEqual(['a@members.test']);
  });

  it('resynchronises after a row with bad quoting', async () => {
    const csv = [
      'email,name,last_name,note', // line 1
      'ok1@members.test,One,One,N', // 2
      'ok3@members.test,"Three",Three,N', // 3
      '"quoted,comma"@members.test,Q,Q,Y', // 4
      'ok2@members.test,"Name, with ""quotes""",Two,"multi', // 5
      'line"', // 6
      'ok4@members.test,Four"s,Four,N', // 7: a quote inside an unquoted field
      'ok5@members.test,"Five"x,Five,N', // 8: text after a closing quote
      'ok6@members.test,Six,Six,N', // 9
    ].join('\n');
    const list = memoryList();
    const summary = await importSubscribersCsv(Readable.from([csv]), { write: list.write });
    expect(summary.rejects.map((reject) => reject.line)).toEqual([4]);
    expect(list.rows.map((row) => [row.address, row.name])).toEqual([
      ['ok1@members.test', 'One'],
      ['ok3@members.test', 'Three'],
      ['ok2@members.test', 'Name, with "quotes"'],
      ['ok4@members.test', 'Four"s'],
      ['ok5@members.test', '"Five"x'],
      ['ok6@members.test', 'Six'],
    ]);
    expect(list.rows[2]!.fields).toEqual({ last_name: 'Two', note: 'multi\nline' });
  });

  it('parses RFC 4180 rows', async () => {
    // Quoted and unquoted fields, escaped quotes, embedded CRLF and delimiters. Padding is
    // trimmed from every value, quoted or not.
    const csv =
      'email,name,note\r\n' +
      '"ann@members.test","Ann ""A"" Lee","a,b"\r\n' +
      'bob@members.test,Bob,"line1\r\nline2"\r\n' +
      '  cleo@members.test  ,  Cleo  ," padded "\r\n' +
      'dan@members.test,"",""""\r\n';
    const list = memoryList();
    const summary = await importSubscribersCsv(Readable.from([csv]), { write: list.write });
    expect(summary.rejects).toEqual([]);
    expect(list.rows).toEqual([
      { address: 'ann@members.test', name: 'Ann "A" Lee', fields: { note: 'a,b' } },
      { address: 'bob@members.test', name: 'Bob', fields: { note: 'line1\r\nline2' } },
      { address: 'cleo@members.test', name: 'Cleo', fields: { note: 'padded' } },
      { address: 'dan@members.test', name: '', fields: { note: '"' } },
    ]);
  });
});
