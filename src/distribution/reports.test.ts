import { describe, expect, it } from 'vitest';

import { getHeader } from '../message/index.js';
import { classifyDsnRecipient, classifyReply, classifyStatus, classifyText } from './classify.js';
import { parseReport } from './reports.js';

function crlf(lines: string[]): Buffer {
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

/** A DSN shaped like the ones Postfix writes, with two recipients. */
const dsn = crlf([
  'From: MAILER-DAEMON@mx.example.net (Mail Delivery System)',
  'To: bounces+1.2.0123456789abcdef0123@example.org',
  'Subject: Undelivered Mail Returned to Sender',
  'MIME-Version: 1.0',
  'Content-Type: multipart/report; report-type=delivery-status;',
  '\tboundary="B1.1733220000/mx.example.net"',
  '',
  'This is a MIME-encapsulated message.',
  '',
  '--B1.1733220000/mx.example.net',
  'Content-Description: Notification',
  'Content-Type: text/plain; charset=us-ascii',
  '',
  'I could not deliver your message.',
  '',
  '--B1.1733220000/mx.example.net',
  'Content-Description: Delivery report',
  'Content-Type: message/delivery-status',
  '',
  'Reporting-MTA: dns; mx.example.net',
  'Arrival-Date: Thu,  3 Dec 2026 10:00:00 +0000',
  '',
  'Final-Recipient: rfc822; ann@example.net',
  'Original-Recipient: rfc822;ann@example.net',
  'Action: failed',
  'Status: 5.1.1',
  'Remote-MTA: dns; mail.example.net',
  'Diagnostic-Code: smtp; 550 5.1.1 <ann@example.net>: Recipient address',
  '    rejected: User unknown',
  '',
  'Final-Recipient: rfc822; bob@example.net',
  'Action: delayed',
  'Status: 4.4.1',
  '',
  '--B1.1733220000/mx.example.net',
  'Content-Description: Undelivered Message Headers',
  'Content-Type: text/rfc822-headers',
  '',
  'From: news@example.org',
  'List-Unsubscribe: <https://herald.example.org/u/1.2.abc>',
  'Subject: News',
  '',
  '--B1.1733220000/mx.example.net--',
  '',
]);

/** An abuse report in the format of RFC 5965 section 3, with the original as message/rfc822. */
const arf = crlf([
  'From: <abuse@receiver.example>',
  'To: <fbl@example.org>',
  'Subject: FW: Earn money',
  'MIME-Version: 1.0',
  'Content-Type: multipart/report; report-type=feedback-report; boundary="part1_13d.2e68ed54_boundary"',
  '',
  '--part1_13d.2e68ed54_boundary',
  'Content-Type: text/plain; charset="US-ASCII"',
  'Content-Transfer-Encoding: 7bit',
  '',
  'This is an email abuse report for an email message received from IP 192.0.2.1.',
  '',
  '--part1_13d.2e68ed54_boundary',
  'Content-Type: message/feedback-report',
  '',
  'Feedback-Type: abuse',
  'User-Agent: SomeGenerator/1.0',
  'Version: 1',
  'Original-Mail-From: <bounces+1.2.0123456789abcdef0123@example.org>',
  'Original-Rcpt-To: <ann@example.net>',
  'Arrival-Date: Thu, 3 Dec 2026 10:00:00 +0000',
  'Reported-Domain: example.org',
  'Source-IP: 192.0.2.1',
  '',
  '--part1_13d.2e68ed54_boundary',
  'Content-Type: message/rfc822',
  'Content-Disposition: inline',
  '',
  'From: <news@example.org>',
  'To: <ann@example.net>',
  'List-Unsubscribe: <https://herald.example.org/u/1.2.abc>',
  'Subject: Earn money',
  '',
  'Body.',
  '--part1_13d.2e68ed54_boundary--',
  '',
]);

describe('parseReport', () => {
  it('reads the recipients and original headers of a DSN', () => {
    const report = parseReport(dsn);
    if (report.kind !== 'dsn') throw new Error(`expected a DSN, got ${report.kind}`);
    expect(report.reportingMta).toBe('mx.example.net');
    expect(report.recipients).toEqual([
      {
        finalRecipient: 'ann@example.net',
        originalRecipient: 'ann@example.net',
        action: 'failed',
        status: '5.1.1',
        remoteMta: 'mail.example.net',
        diagnosticCode: '550 5.1.1 <ann@example.net>: Recipient address rejected: User unknown',
      },
      { finalRecipient: 'bob@example.net', action: 'delayed', status: '4.4.1' },
    ]);
    expect(getHeader(report.originalHeaders, 'list-unsubscribe')).toBe(
      '<https://herald.example.org/u/1.2.abc>',
    );
  });

  it('reads an ARF feedback report', () => {
    const report = parseReport(arf);
    if (report.kind !== 'arf') throw new Error(`expected ARF, got ${report.kind}`);
    expect(report).toMatchObject({
      feedbackType: 'abuse',
      userAgent: 'SomeGenerator/1.0',
      originalMailFrom: 'bounces+1.2.0123456789abcdef0123@example.org',
      originalRcptTo: ['ann@example.net'],
      reportedDomain: 'example.org',
      sourceIp: '192.0.2.1',
    });
    expect(getHeader(report.originalHeaders, 'subject')).toBe('Earn money');
  });

  it('returns other messages as plain text, decoding base64', () => {
    const message = crlf([
      'From: postmaster@old.example',
      'Subject: Delivery failure',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('Sorry, the mailbox ann@old.example does not exist.').toString('base64'),
      '',
    ]);
    const report = parseReport(message);
    expect(report).toMatchObject({ kind: 'plain', subject: 'Delivery failure' });
    if (report.kind !== 'plain') return;
    expect(report.text).toContain('does not exist');
    expect(classifyText(report.text)).toMatchObject({
      verdict: 'hard',
      rule: 'text-unknown-recipient',
    });
  });
});

describe('bounce classification', () => {
  it.each([
    ['5.1.1', 'hard', 'bad-address'],
    ['5.1.10', 'hard', 'bad-address'],
    ['5.2.1', 'hard', 'mailbox-disabled'],
    ['5.2.2', 'soft', 'mailbox-full'],
    ['5.4.4', 'hard', 'no-route'],
    ['5.7.1', 'soft', 'policy-rejected'],
    ['4.2.2', 'soft', 'transient-failure'],
    ['2.0.0', 'ignore', 'success'],
    ['5.3.0', 'hard', 'permanent-failure'],
  ])('status %s is %s (%s)', (status, verdict, rule) => {
    expect(classifyStatus(status)).toMatchObject({ verdict, rule });
  });

  it.each([
    ['550 5.1.1 <a@example.net>: Recipient address rejected', 'hard', 'bad-address'],
    ['550 Requested action not taken: mailbox unavailable', 'hard', 'text-unknown-recipient'],
    ['552 Mailbox is full', 'soft', 'text-mailbox-full'],
    ['554 Message rejected', 'hard', 'permanent-reply'],
    ['451 Try again later', 'soft', 'text-temporary'],
    ['421 Service not available', 'soft', 'transient-reply'],
    ['I am out of the office until Monday', 'ignore', 'auto-reply'],
  ])('reply "%s" is %s (%s)', (reply, verdict, rule) => {
    expect(classifyReply(reply)).toMatchObject({ verdict, rule });
  });

  it('uses the diagnostic text when the status is only 5.0.0', () => {
    expect(
      classifyDsnRecipient({
        finalRecipient: 'a@example.net',
        action: 'failed',
        status: '5.0.0',
        diagnosticCode: '550 mailbox full',
      }),
    ).toMatchObject({ verdict: 'soft', rule: 'text-mailbox-full' });
  });

  it('ignores delay notices', () => {
    expect(
      classifyDsnRecipient({ finalRecipient: 'a@example.net', action: 'delayed', status: '4.4.1' }),
    ).toMatchObject({ verdict: 'ignore', rule: 'not-a-failure' });
  });
});
