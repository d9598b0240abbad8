import { Readable } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { checkAddress } from './address.js';
import { importSubscribersCsv, type ImportReject } from './csv-import.js';
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
});
