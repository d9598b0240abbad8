/**
 * Validation of `distribution.domainRules`, the per-destination campaign limits. Each problem
 * names the rule by its position counted from 1 and the field that is wrong, because a list
 * of similar rules is otherwise hard to search for the bad one.
 */
import type { DomainRule } from '../distribution/throttle.js';

const FIELDS = ['domain', 'maxPerMinute', 'startPerMinute', 'rampMinutes'];

/**
 * Return the first problem of a list of domain rules, as `rule N: ...`, or undefined when every
 * rule is valid. The caller has already checked that `rules` is an array.
 */
export function findDomainRuleProblem(rules: readonly unknown[]): string | undefined {
  const firstRuleOf = new Map<string, number>();

  for (const [index, rule] of rules.entries()) {
    const position = index + 1;
    const problem = findRuleProblem(rule);
    if (problem !== undefined) return `rule ${position}: ${problem}`;

    // Only the first of two rules for one pattern would ever apply, so a repeat is a mistake.
    const { domain } = rule as DomainRule;
    const pattern = domain.toLowerCase();
    const earlier = firstRuleOf.get(pattern);
    if (earlier !== undefined) {
      return (
        `rule ${position}: domain ${JSON.stringify(domain)} repeats rule ${earlier} ` +
        '(domain patterns are compared ignoring case)'
      );
    }
    firstRuleOf.set(pattern, position);
  }
  return undefined;
}

function findRuleProblem(rule: unknown): string | undefined {
  if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) {
    return `expected a mapping such as {"domain": "*.example", "maxPerMinute": 600}, got ${JSON.stringify(rule)}`;
  }
  const fields = rule as Record<string, unknown>;

  const unknownField = Object.keys(fields).find((key) => !FIELDS.includes(key));
  if (unknownField !== undefined) {
    return `unknown field ${unknownField} (the fields are ${FIELDS.join(', ')})`;
  }

  const { domain, maxPerMinute, startPerMinute, rampMinutes } = fields;
  if (domain === undefined) return 'domain is missing';
  if (typeof domain !== 'string' || !isDomainPattern(domain)) {
    return `domain ${JSON.stringify(domain)} is not a domain name, *.suffix or *`;
  }
  if (maxPerMinute === undefined) return 'maxPerMinute is missing';

  const numbers = { maxPerMinute, startPerMinute, rampMinutes };
  for (const [name, value] of Object.entries(numbers)) {
    if (value !== undefined && !isRate(value)) {
      return `${name} ${JSON.stringify(value)} is not a number of at least 0`;
    }
  }

  // The ramp interpolates from the start rate to the maximum, so a start above the maximum
  // makes the rate fall during the ramp. With a maximum of 0 (no limit), the rate would fall
  // towards zero messages per minute until the ramp ends and the limit disappears.
  const start = startPerMinute as number | undefined;
  const max = maxPerMinute as number;
  if (start !== undefined && start > max) {
    return `startPerMinute ${start} is above maxPerMinute ${max}`;
  }
  return undefined;
}

function isRate(value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/** Return whether `pattern` is a domain name, `*.suffix` (a domain and its subdomains) or `*`. */
function isDomainPattern(pattern: string): boolean {
  if (pattern === '*') return true;
  return isDomainName(pattern.startsWith('*.') ? pattern.slice(2) : pattern);
}

/** Letters, digits and hyphens in dot-separated labels of 1 to 63 characters (RFC 1123). */
export function isDomainName(value: string): boolean {
  if (value.length === 0 || value.length > 253) return false;
  return value.split('.').every((label) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i.test(label));
}
