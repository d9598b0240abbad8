import { describe, expect, it } from 'vitest';
import { DnsError } from '../dns/index.js';
import {
  decide,
  decideDnsFailure,
  decideHostLookupFailure,
  parseReply,
  type DeliveryStage,
  type VerdictAction,
} from './decide.js';

type Row = [DeliveryStage, number | undefined, string | undefined, boolean, VerdictAction, string];

// stage, reply code, enhanced code, last MX, expected action, expected DSN
const table: Row[] = [
  ['end-of-data', 250, '2.0.0', true, 'deliver', '2.0.0'],
  ['rcpt', 250, undefined, false, 'deliver', '2.0.0'],
  ['connect', undefined, undefined, false, 'next-mx', '4.4.1'],
  ['connect', undefined, undefined, true, 'defer', '4.4.1'],
  ['ehlo', undefined, undefined, true, 'defer', '4.4.2'],
  ['end-of-data', undefined, undefined, false, 'next-mx', '4.4.2'],
  ['starttls', undefined, undefined, true, 'defer', '4.7.0'],
  ['starttls', undefined, '4.7.4', false, 'next-mx', '4.7.4'],
  ['starttls', 502, '5.5.1', true, 'defer', '4.5.1'],
  ['greeting', 554, '5.7.1', false, 'next-mx', '4.7.1'],
  ['greeting', 554, undefined, true, 'defer', '4.0.0'],
  ['greeting', 421, '4.3.2', true, 'defer', '4.3.2'],
  ['ehlo', 550, undefined, false, 'bounce', '5.0.0'],
  ['ehlo', 421, undefined, false, 'next-mx', '4.0.0'],
  ['mail', 451, '4.3.0', false, 'next-mx', '4.3.0'],
  ['mail', 451, '4.3.0', true, 'defer', '4.3.0'],
  ['mail', 553, '5.1.8', false, 'bounce', '5.1.8'],
  ['mail', 421, '4.4.2', false, 'next-mx', '4.4.2'],
  ['rcpt', 550, '5.1.1', false, 'bounce', '5.1.1'],
  ['rcpt', 550, undefined, true, 'bounce', '5.1.0'],
  ['rcpt', 450, '4.2.1', false, 'next-mx', '4.2.1'],
  ['rcpt', 452, '4.5.3', true, 'defer', '4.5.3'],
  ['rcpt', 552, '5.5.3', true, 'defer', '4.5.3'],
  ['rcpt', 503, '5.5.1', true, 'defer', '4.5.1'],
  ['rcpt', 550, '4.2.0', true, 'bounce', '5.2.0'],
  ['data', 554, '5.5.1', false, 'bounce', '5.5.1'],
  ['data', 451, undefined, true, 'defer', '4.0.0'],
  ['end-of-data', 552, '5.3.4', false, 'bounce', '5.3.4'],
  ['end-of-data', 554, '5.7.1', true, 'bounce', '5.7.1'],
  ['end-of-data', 452, '4.3.1', false, 'next-mx', '4.3.1'],
  ['end-of-data', 354, undefined, true, 'defer', '4.5.0'],
  ['end-of-data', 650, undefined, false, 'next-mx', '4.5.0'],
];

describe('decide', () => {
  it.each(table)('%s %s %s (last MX %s) -> %s %s', (stage, code, enhanced, lastMx, action, dsn) => {
    const verdict = decide({ stage, code, enhanced, lastMx });
    expect(verdict.action).toBe(action);
    expect(verdict.dsn).toBe(dsn);
  });
});

describe('decideDnsFailure', () => {
  it.each([
    ['NULL_MX', 'bounce', '5.1.10'],
    ['NOTFOUND', 'bounce', '5.1.2'],
    ['NODATA', 'bounce', '5.4.4'],
    ['SERVFAIL', 'defer', '4.4.3'],
    ['TIMEOUT', 'defer', '4.4.3'],
    ['FAILED', 'defer', '4.4.3'],
  ] as const)('%s -> %s %s', (code, action, dsn) => {
    const verdict = decideDnsFailure(new DnsError(code, 'example.test', 'MX'));
    expect(verdict.action).toBe(action);
    expect(verdict.dsn).toBe(dsn);
  });
});

describe('decideHostLookupFailure', () => {
  it('moves on, then defers', () => {
    expect(decideHostLookupFailure(false)).toEqual({ action: 'next-mx', dsn: '4.4.4' });
    expect(decideHostLookupFailure(true)).toEqual({ action: 'defer', dsn: '4.4.4' });
  });
});

describe('parseReply', () => {
  it.each([
    ['550 5.1.1 No such user', 550, '5.1.1'],
    ['250-2.0.0 first line', 250, '2.0.0'],
    ['451 Try later', 451, undefined],
    ['421', 421, undefined],
    ['550 5.1.1a not a code', 550, undefined],
    ['garbage', undefined, undefined],
  ])('%s', (reply, code, enhanced) => {
    const parsed = parseReply(reply);
    expect(parsed.code).toBe(code);
    expect(parsed.enhanced).toBe(enhanced);
  });
});
