/**
 * Parsers never throw on hostile input: random bytes and mutations of valid inputs go through
 * the tag-list, DKIM-Signature, key-record, header, address and zone-file parsers, and through
 * the whole verifier. A seeded generator keeps failures reproducible.
 */
import { describe, expect, it } from 'vitest';

import { parseAddressList, parseHeaderFields, splitMessage, toCrlf } from '../message/index.js';
import {
  parseKeyRecord,
  parseSignature,
  parseTagList,
  parseZoneFile,
  verifyMessage,
} from './index.js';

function createRandom(seed: number): (limit: number) => number {
  let state = seed;
  return (limit) => {
    // xorshift32
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % limit;
  };
}

const SIGNATURE =
  'v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel; t=1700000000; x=1800000000; ' +
  'i=joe@example.com; l=10; q=dns/txt; h=from : to : subject;\r\n bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n b=AuUoFEfDxTDkHlLXSZEpZj79LICEps6eda7W3deTVFOk4yAUoqOB';
const KEY =
  'v=DKIM1; k=rsa; h=sha256; s=email; t=y:s; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkM' +
  'oGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB';
const MESSAGE = `DKIM-Signature: ${SIGNATURE}\r\nFrom: "A (b)" <a@example.com>, c@d\r\nTo: group: x@y, <z@w>;\r\nSubject: voil\xc3\xa0\r\n folded\r\n\r\nbody  \r\n`;
const ZONE =
  '$ORIGIN example.com.\n$TTL 60\nsel._domainkey IN TXT ( "v=DKIM1; " "p=AAAA\\"\\065" ) ; c\n @ 60 IN A 192.0.2.1\n';
const INTERESTING = [
  ';',
  '=',
  ':',
  '\r\n',
  '\r\n ',
  ' ',
  '\t',
  '"',
  '\\',
  '(',
  ')',
  '<',
  '>',
  '@',
  ',',
  '\x00',
  '\xa0',
  '\xff',
  'b=',
  'h=',
  'p=',
];

function mutate(input: string, random: (limit: number) => number): string {
  let text = input;
  const edits = 1 + random(6);
  for (let edit = 0; edit < edits; edit++) {
    const position = random(text.length + 1);
    const choice = random(4);
    if (choice === 0) text = text.slice(0, position) + text.slice(position + 1 + random(10));
    else if (choice === 1)
      text =
        text.slice(0, position) +
        (INTERESTING[random(INTERESTING.length)] ?? '') +
        text.slice(position);
    else if (choice === 2)
      text = text.slice(0, position) + String.fromCharCode(random(256)) + text.slice(position + 1);
    else text = text.slice(0, position) + text.slice(random(text.length + 1));
  }
  return text;
}

function randomText(random: (limit: number) => number): string {
  let text = '';
  const length = random(120);
  for (let index = 0; index < length; index++) {
    text +=
      random(3) === 0
        ? (INTERESTING[random(INTERESTING.length)] ?? '')
        : String.fromCharCode(random(256));
  }
  return text;
}

const ROUNDS = 2000;

describe('parsers under fuzzing', () => {
  it('tag list, signature and key record never throw', () => {
    const random = createRandom(0x5eed);
    for (let round = 0; round < ROUNDS; round++) {
      for (const input of [mutate(SIGNATURE, random), mutate(KEY, random), randomText(random)]) {
        expect(() => parseTagList(input), JSON.stringify(input)).not.toThrow();
        const signature = parseSignature(input);
        expect(typeof signature.ok).toBe('boolean');
        const key = parseKeyRecord(input);
        expect(typeof key.ok).toBe('boolean');
      }
    }
  });

  it('header, address and zone parsers never throw', () => {
    const random = createRandom(0xface);
    for (let round = 0; round < ROUNDS; round++) {
      const message = Buffer.from(mutate(MESSAGE, random), 'latin1');
      expect(() => parseHeaderFields(splitMessage(toCrlf(message)).header)).not.toThrow();
      expect(() =>
        parseAddressList(mutate('"A (b)" <a@example.com>, g: x@y, <z@w>;', random)),
      ).not.toThrow();
      expect(() => parseZoneFile(mutate(ZONE, random))).not.toThrow();
    }
  });

  it('header fields keep every byte', () => {
    const random = createRandom(0xbeef);
    for (let round = 0; round < 500; round++) {
      const header = toCrlf(Buffer.from(mutate(MESSAGE, random), 'latin1'));
      const fields = parseHeaderFields(header);
      expect(Buffer.concat(fields.map((field) => field.raw)).equals(header)).toBe(true);
    }
  });

  it('the verifier returns verdicts for mutated messages', async () => {
    const random = createRandom(0xc0de);
    const lookupTxt = () => Promise.resolve([[KEY]]);
    for (let round = 0; round < 500; round++) {
      const message = Buffer.from(mutate(MESSAGE, random), 'latin1');
      const results = await verifyMessage(message, { lookupTxt });
      expect(results.length).toBeGreaterThan(0);
      for (const result of results) expect(result.result).not.toBe('pass');
    }
  });
});
