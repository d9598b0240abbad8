/**
 * Hard or soft: what a bounce means for the subscriber. Each verdict names the rule that made
 * it, so a list owner can see why an address was suppressed. Enhanced status codes (RFC 3463)
 * decide when present; otherwise the SMTP reply code; otherwise text patterns that cover the
 * common non-standard bounce messages.
 */
import type { DsnRecipient } from './reports.js';

export type BounceVerdict = 'hard' | 'soft' | 'ignore';

export interface Classification {
  verdict: BounceVerdict;
  /** Short rule name, stable for reports and tests. */
  rule: string;
  /** The status or text the rule matched. */
  evidence: string;
}

/**
 * Permanent codes whose cause is not the address: the mailbox exists, so the subscriber stays
 * and the bounce counts towards the soft threshold (RFC 3463 section 3).
 */
const SOFT_PERMANENT: { prefix: string; rule: string }[] = [
  { prefix: '5.2.2', rule: 'mailbox-full' },
  { prefix: '5.2.3', rule: 'message-too-large' },
  { prefix: '5.3.4', rule: 'message-too-large' },
  { prefix: '5.5.', rule: 'protocol-error' },
  { prefix: '5.6.', rule: 'content-rejected' },
  { prefix: '5.7.', rule: 'policy-rejected' },
];

/** Text patterns for bounces without a usable status code, tried in order. */
const TEXT_RULES: { pattern: RegExp; verdict: BounceVerdict; rule: string }[] = [
  {
    pattern: /out of (the )?office|auto(matic)?[- ]?(reply|response)|on vacation/i,
    verdict: 'ignore',
    rule: 'auto-reply',
  },
  {
    pattern: /(mailbox|inbox) (is )?full|over (the )?quota|quota exceeded|insufficient storage/i,
    verdict: 'soft',
    rule: 'text-mailbox-full',
  },
  {
    pattern:
      /user (is )?unknown|unknown (user|recipient)|no such (user|mailbox|recipient|address)|(mailbox|address|recipient) (is )?(unavailable|not found|does not exist|invalid|disabled)|does not exist|invalid (recipient|mailbox|address)|account (has been )?(disabled|closed|deleted)/i,
    verdict: 'hard',
    rule: 'text-unknown-recipient',
  },
  {
    pattern: /(temporar(il)?y|try again later|will retry|delayed|deferred|greylist)/i,
    verdict: 'soft',
    rule: 'text-temporary',
  },
  {
    pattern: /(spam|blocked|blacklist|blocklist|reputation|policy)/i,
    verdict: 'soft',
    rule: 'text-policy',
  },
];

/** Classifies one recipient group of a DSN. */
export function classifyDsnRecipient(recipient: DsnRecipient): Classification {
  if (recipient.action !== '' && recipient.action !== 'failed') {
    return { verdict: 'ignore', rule: 'not-a-failure', evidence: `Action: ${recipient.action}` };
  }
  if (/^[245]\.\d{1,3}\.\d{1,3}$/.test(recipient.status) && recipient.status !== '5.0.0') {
    return classifyStatus(recipient.status);
  }
  // 5.0.0 means only "permanent", so the diagnostic text is the better evidence when present.
  if (recipient.diagnosticCode) {
    const fromText = classifyReply(recipient.diagnosticCode);
    if (fromText.rule !== 'unclassified') return fromText;
  }
  if (recipient.status.startsWith('5.'))
    return { verdict: 'hard', rule: 'permanent-failure', evidence: recipient.status };
  return { verdict: 'soft', rule: 'unclassified', evidence: recipient.status };
}

/** Classifies an enhanced status code. */
export function classifyStatus(status: string): Classification {
  if (status.startsWith('2.')) return { verdict: 'ignore', rule: 'success', evidence: status };
  if (status.startsWith('4.'))
    return { verdict: 'soft', rule: 'transient-failure', evidence: status };
  const soft = SOFT_PERMANENT.find((entry) => status.startsWith(entry.prefix));
  if (soft) return { verdict: 'soft', rule: soft.rule, evidence: status };
  if (status.startsWith('5.1.')) return { verdict: 'hard', rule: 'bad-address', evidence: status };
  if (status.startsWith('5.2.'))
    return { verdict: 'hard', rule: 'mailbox-disabled', evidence: status };
  if (status.startsWith('5.4.')) return { verdict: 'hard', rule: 'no-route', evidence: status };
  return { verdict: 'hard', rule: 'permanent-failure', evidence: status };
}

/**
 * Classifies an SMTP reply (`550 5.1.1 <x>: Recipient address rejected`) or a free-text
 * diagnostic: the enhanced code wins, then text patterns, then the basic reply code.
 */
export function classifyReply(reply: string): Classification {
  const enhanced = /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply);
  if (enhanced && enhanced[1] !== '5.0.0') return classifyStatus(enhanced[1]!);

  const byText = classifyText(reply);
  if (byText.rule !== 'unclassified') return byText;

  const code = /^\s*([245])\d\d\b/.exec(reply);
  if (code?.[1] === '5')
    return { verdict: 'hard', rule: 'permanent-reply', evidence: reply.slice(0, 80) };
  if (code?.[1] === '4')
    return { verdict: 'soft', rule: 'transient-reply', evidence: reply.slice(0, 80) };
  return byText;
}

/** Classifies the text of a non-standard bounce. */
export function classifyText(text: string): Classification {
  for (const rule of TEXT_RULES) {
    const match = rule.pattern.exec(text);
    if (match) return { verdict: rule.verdict, rule: rule.rule, evidence: match[0] };
  }
  return { verdict: 'soft', rule: 'unclassified', evidence: '' };
}
