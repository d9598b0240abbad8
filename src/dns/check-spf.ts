/**
 * Checks an SPF record (RFC 7208): exactly one `v=spf1` record at the name (section 3.2), a
 * syntax receivers can evaluate, at most 10 DNS-querying terms over the whole include tree
 * (section 4.6.4), and a result of `pass` for every address Herald sends from.
 *
 * The evaluator follows `include:`, `redirect=`, `a`, `mx`, `ip4:` and `ip6:`. It does not
 * expand macros (section 7): a term with a macro counts as a lookup and never matches, so a
 * record that relies on macros is reported as not covering Herald.
 */
import net from 'node:net';

import { lookupFailed, lookupTxt, missingFinding, showTxt } from './check-common.js';
import type { CheckLookups } from './check-lookups.js';
import type { ExpectedRecord, Finding, RecordCheck } from './check-types.js';
import { statusOf } from './check-types.js';
import { DnsError } from './resolver.js';

/** RFC 7208 section 4.6.4: at most 10 terms that cause DNS queries. */
export const MAX_SPF_LOOKUPS = 10;
/** A bound on include depth so a loop of includes cannot run for ever. */
const MAX_DEPTH = 12;

export type SpfResult =
  'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'permerror' | 'temperror';

export function isSpfRecord(record: string[]): boolean {
  return /^v=spf1(\s|$)/i.test(record.join('').trimStart().replace(/^"/, ''));
}

export async function checkSpf(
  lookups: CheckLookups,
  expected: ExpectedRecord,
  domain: string,
  sendingAddresses: string[],
): Promise<RecordCheck> {
  const base = {
    kind: 'spf' as const,
    purpose: expected.purpose,
    name: expected.name,
    type: expected.type,
    expected: expected.value,
  };
  const answer = await lookupTxt(lookups, expected.name, domain, isSpfRecord);
  if (answer.kind === 'failed') {
    const findings = [lookupFailed(expected.name, answer.error)];
    return { ...base, found: [], findings, status: statusOf(findings) };
  }
  if (answer.kind === 'missing') {
    const findings = [missingFinding(expected.name, 'SPF record', answer)];
    return {
      ...base,
      found: (answer.doubledRecords ?? []).map(showTxt),
      findings,
      status: statusOf(findings),
    };
  }

  const spf = answer.records.filter(isSpfRecord);
  const found = answer.records.map(showTxt);
  const findings = await analyseSpf(lookups, expected.name, spf, sendingAddresses);
  return { ...base, found, findings, status: statusOf(findings) };
}

async function analyseSpf(
  lookups: CheckLookups,
  name: string,
  records: string[][],
  sendingAddresses: string[],
): Promise<Finding[]> {
  if (records.length === 0) return [missingFinding(name, 'SPF record', {})];
  if (records.length > 1) {
    return [
      {
        code: 'several-records',
        severity: 'error',
        name,
        message: `${records.length} SPF records are published; receivers then fail SPF for every message (RFC 7208 section 3.2: permerror).`,
        fix: 'Merge them into one v=spf1 record that lists every sender, and delete the others.',
      },
    ];
  }

  const text = (records[0] ?? []).join('');
  if (text.includes('"')) {
    return [
      {
        code: 'quotes',
        severity: 'error',
        name,
        message: 'The SPF value contains quote characters (") that were pasted with it.',
        fix: 'Edit the record and remove every " character.',
      },
    ];
  }
  const findings: Finding[] = [];
  const evaluator = new SpfEvaluator(lookups);
  const count = await evaluator.countLookups(name);
  if (count.error) {
    findings.push({
      code: 'malformed',
      severity: 'error',
      name,
      message: `The SPF record cannot be evaluated: ${count.error}.`,
      fix: 'Correct the record; the expected value is a valid starting point.',
    });
    return findings;
  }
  if (count.lookups > MAX_SPF_LOOKUPS) {
    findings.push({
      code: 'spf-too-many-lookups',
      severity: 'error',
      name,
      message: `Evaluating the record takes ${count.lookups} DNS lookups (include, a, mx, ptr, exists, redirect, counted through every include); receivers stop at ${MAX_SPF_LOOKUPS} and fail SPF (RFC 7208 section 4.6.4).`,
      fix: 'Replace includes with the ip4:/ip6: ranges they list, or drop senders no longer used.',
    });
  }
  if (count.ptr) {
    findings.push({
      code: 'spf-ptr',
      severity: 'warning',
      name,
      message:
        'The record uses the ptr mechanism, which RFC 7208 section 5.5 says not to use; many receivers ignore it.',
      fix: 'Replace ptr with ip4:/ip6: or a: terms.',
    });
  }

  for (const address of sendingAddresses) {
    const result = await evaluator.evaluate(name, address);
    if (result === 'pass') continue;
    findings.push({
      code: 'spf-not-covering',
      severity: 'error',
      name,
      message: `The record does not authorise Herald's sending address ${address}: the result for it is ${result}.`,
      fix: 'Add the terms of the suggested record (for example a:HOST or ip4:ADDRESS) before the final all.',
    });
  }
  return findings;
}

interface Term {
  qualifier: '+' | '-' | '~' | '?';
  mechanism: string;
  /** The domain-spec or address after `:`, if any. */
  argument?: string;
  prefix4?: number;
  prefix6?: number;
}

interface ParsedSpf {
  terms: Term[];
  redirect?: string;
}

const MECHANISMS = new Set(['all', 'include', 'a', 'mx', 'ptr', 'ip4', 'ip6', 'exists']);
const LOOKUP_MECHANISMS = new Set(['include', 'a', 'mx', 'ptr', 'exists']);

/** Parses `v=spf1 …` into terms (RFC 7208 section 12); returns a reason string when invalid. */
export function parseSpf(text: string): ParsedSpf | string {
  const parts = text.trim().split(/\s+/);
  if ((parts[0] ?? '').toLowerCase() !== 'v=spf1') return 'it does not start with v=spf1';
  const parsed: ParsedSpf = { terms: [] };
  for (const part of parts.slice(1)) {
    const modifier = /^([a-z][a-z0-9_.-]*)=(.*)$/i.exec(part);
    if (modifier) {
      const [, modifierName = '', value = ''] = modifier;
      if (modifierName.toLowerCase() === 'redirect') {
        if (parsed.redirect !== undefined) return 'redirect= appears twice';
        parsed.redirect = value;
      }
      continue;
    }
    const term = parseTerm(part);
    if (typeof term === 'string') return term;
    parsed.terms.push(term);
  }
  return parsed;
}

function parseTerm(part: string): Term | string {
  const match = /^([+\-~?]?)([a-z0-9]+)(?::([^/]*))?((?:\/\d+)?(?:\/\/\d+)?)$/i.exec(part);
  const ipMatch = /^([+\-~?]?)(ip[46]):([^/]+)(?:\/(\d+))?$/i.exec(part);
  if (ipMatch) {
    const [, qualifier = '', mechanism = '', address = '', prefix] = ipMatch;
    const family = mechanism.toLowerCase() === 'ip4' ? 4 : 6;
    if (net.isIP(address) !== family) return `"${part}" is not a valid ${mechanism} term`;
    const bits = prefix === undefined ? undefined : Number(prefix);
    if (bits !== undefined && bits > (family === 4 ? 32 : 128)) {
      return `"${part}" has an invalid prefix length`;
    }
    return {
      qualifier: (qualifier || '+') as Term['qualifier'],
      mechanism: mechanism.toLowerCase(),
      argument: address,
      ...(family === 4 ? { prefix4: bits } : { prefix6: bits }),
    };
  }
  if (!match) return `"${part}" is not a valid SPF term`;
  const [, qualifier = '', rawMechanism = '', argument, prefixes = ''] = match;
  const mechanism = rawMechanism.toLowerCase();
  if (!MECHANISMS.has(mechanism)) return `"${rawMechanism}" is not an SPF mechanism`;
  if ((mechanism === 'include' || mechanism === 'exists') && !argument) {
    return `${mechanism} needs a domain, as in ${mechanism}:example.com`;
  }
  const prefix4 = /^\/(\d+)/.exec(prefixes)?.[1];
  const prefix6 = /\/\/(\d+)$/.exec(prefixes)?.[1];
  return {
    qualifier: (qualifier || '+') as Term['qualifier'],
    mechanism,
    ...(argument ? { argument } : {}),
    ...(prefix4 ? { prefix4: Number(prefix4) } : {}),
    ...(prefix6 ? { prefix6: Number(prefix6) } : {}),
  };
}

const RESULT_BY_QUALIFIER: Record<Term['qualifier'], SpfResult> = {
  '+': 'pass',
  '-': 'fail',
  '~': 'softfail',
  '?': 'neutral',
};

/** Evaluates SPF for one address and counts lookups, caching DNS results across calls. */
export class SpfEvaluator {
  private readonly records = new Map<string, Promise<ParsedSpf | string | undefined>>();

  constructor(private readonly lookups: CheckLookups) {}

  /** Counts DNS-querying terms over the whole include and redirect tree. */
  async countLookups(
    domain: string,
    depth = 0,
  ): Promise<{ lookups: number; ptr: boolean; error?: string }> {
    const record = await this.record(domain).catch(
      (error: unknown) => `the lookup of ${domain} failed (${(error as Error).message})`,
    );
    if (typeof record === 'string') return { lookups: 0, ptr: false, error: record };
    if (!record) {
      return depth === 0
        ? { lookups: 0, ptr: false, error: `no SPF record at ${domain}` }
        : { lookups: 0, ptr: false };
    }
    let lookups = 0;
    let ptr = false;
    const nested: string[] = [];
    for (const term of record.terms) {
      if (!LOOKUP_MECHANISMS.has(term.mechanism)) continue;
      lookups++;
      if (term.mechanism === 'ptr') ptr = true;
      if (term.mechanism === 'include' && term.argument) nested.push(term.argument);
    }
    if (record.redirect) {
      lookups++;
      nested.push(record.redirect);
    }
    if (depth >= MAX_DEPTH) return { lookups, ptr, error: 'the includes form a loop' };
    for (const name of nested) {
      if (hasMacro(name)) continue;
      const inner = await this.countLookups(name, depth + 1);
      if (inner.error) return { lookups, ptr, error: `in ${name}: ${inner.error}` };
      lookups += inner.lookups;
      ptr ||= inner.ptr;
    }
    return { lookups, ptr };
  }

  /** Computes the SPF result for `address` sending with a MAIL FROM at `domain` (RFC 7208 section 4). */
  async evaluate(domain: string, address: string, depth = 0): Promise<SpfResult> {
    if (depth > MAX_DEPTH) return 'permerror';
    const record = await this.record(domain).catch(() => 'temperror' as const);
    if (record === 'temperror') return 'temperror';
    if (typeof record === 'string') return 'permerror';
    if (!record) return 'none';

    for (const term of record.terms) {
      const matched = await this.matches(term, domain, address, depth);
      if (matched === 'temperror' || matched === 'permerror') return matched;
      if (matched) return RESULT_BY_QUALIFIER[term.qualifier];
    }
    if (record.redirect && !hasMacro(record.redirect)) {
      const result = await this.evaluate(record.redirect, address, depth + 1);
      return result === 'none' ? 'permerror' : result;
    }
    return 'neutral';
  }

  private async matches(
    term: Term,
    domain: string,
    address: string,
    depth: number,
  ): Promise<boolean | 'temperror' | 'permerror'> {
    const target = term.argument ?? domain;
    switch (term.mechanism) {
      case 'all':
        return true;
      case 'ip4':
      case 'ip6':
        return inNetwork(address, [target], term);
      case 'include': {
        if (hasMacro(target)) return false;
        const result = await this.evaluate(target, address, depth + 1);
        if (result === 'none') return 'permerror';
        if (result === 'temperror' || result === 'permerror') return result;
        return result === 'pass';
      }
      case 'a':
        if (hasMacro(target)) return false;
        return this.addressesMatch([target], address, term);
      case 'mx': {
        if (hasMacro(target)) return false;
        try {
          const hosts = await this.lookups.resolveMx(target);
          return this.addressesMatch(
            hosts.filter((host) => !host.implicit).map((host) => host.exchange),
            address,
            term,
          );
        } catch (error) {
          return error instanceof DnsError && !error.permanent ? 'temperror' : false;
        }
      }
      default:
        // ptr and exists are counted but not evaluated; they never match here.
        return false;
    }
  }

  private async addressesMatch(
    hosts: string[],
    address: string,
    term: Term,
  ): Promise<boolean | 'temperror'> {
    const addresses: string[] = [];
    for (const host of hosts) {
      try {
        addresses.push(...(await this.lookups.resolveAddresses(host)));
      } catch (error) {
        if (error instanceof DnsError && !error.permanent) return 'temperror';
      }
    }
    return inNetwork(address, addresses, term);
  }

  private record(domain: string): Promise<ParsedSpf | string | undefined> {
    const key = domain.toLowerCase();
    let pending = this.records.get(key);
    if (!pending) {
      pending = this.fetch(key);
      this.records.set(key, pending);
    }
    return pending;
  }

  private async fetch(domain: string): Promise<ParsedSpf | string | undefined> {
    let records: string[][];
    try {
      records = await this.lookups.resolveTxt(domain);
    } catch (error) {
      if (error instanceof DnsError && error.permanent) return undefined;
      throw error;
    }
    const spf = records.filter(isSpfRecord);
    if (spf.length === 0) return undefined;
    if (spf.length > 1) return `${domain} publishes ${spf.length} SPF records`;
    return parseSpf((spf[0] ?? []).join(''));
  }
}

function hasMacro(name: string): boolean {
  return name.includes('%');
}

function inNetwork(address: string, networks: string[], term: Term): boolean {
  const family = net.isIP(address);
  if (family === 0) return false;
  const list = new net.BlockList();
  for (const network of networks) {
    const networkFamily = net.isIP(network);
    if (networkFamily !== family) continue;
    const prefix = family === 4 ? (term.prefix4 ?? 32) : (term.prefix6 ?? 128);
    list.addSubnet(network, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}
