import { execFileSync } from 'node:child_process';

import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';

import { buildDsn, dsnQueueMessage, type DsnOptions } from './dsn.js';

const original = Buffer.from(
  [
    'From: Author <author@example.org>',
    'To: info@hosted.example',
    'Subject: Quarterly report',
    'Message-ID: <orig-1@example.org>',
    '',
    'The secret body of the message.',
    '',
  ].join('\r\n'),
);

function options(overrides: Partial<DsnOptions> = {}): DsnOptions {
  return {
    hostname: 'mx.herald.test',
    to: 'author@example.org',
    queueId: '4bX9kq2m7Hz1',
    arrivalDate: new Date('2026-12-01T10:00:00Z'),
    now: new Date('2026-12-01T10:05:00Z'),
    original,
    recipients: [
      {
        recipient: 'target@example.net',
        originalRecipient: 'info@hosted.example',
        action: 'failed',
        status: '5.1.1',
        remoteMta: 'mx1.example.net',
        diagnostic: '550-5.1.1 The email account does not exist.\r\n550 5.1.1 Try again',
        lastAttemptAt: new Date('2026-12-01T10:04:59Z'),
      },
    ],
    ...overrides,
  };
}

/**
 * Parse the DSN with Python's email package, an independent MIME parser that splits
 * message/delivery-status into its field blocks (RFC 3464 section 2.1).
 */
function parseWithPython(dsn: Buffer): {
  contentType: string;
  reportType: string;
  parts: string[];
  blocks: Record<string, string>[];
  headers: string;
} {
  const script = `
import email, email.policy, json, sys
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.compat32)
parts = msg.get_payload()
status = parts[1].get_payload()
print(json.dumps({
  "contentType": msg.get_content_type(),
  "reportType": msg.get_param("report-type"),
  "parts": [p.get_content_type() for p in parts],
  "blocks": [dict(block.items()) for block in status],
  "headers": parts[2].get_payload(),
}))
`;
  const output = execFileSync('/usr/bin/python3', ['-c', script], { input: dsn });
  return JSON.parse(output.toString('utf8')) as ReturnType<typeof parseWithPython>;
}

describe('buildDsn', () => {
  it('is a multipart/report with three parts', () => {
    const parsed = parseWithPython(buildDsn(options()));
    expect(parsed.contentType).toBe('multipart/report');
    expect(parsed.reportType).toBe('delivery-status');
    expect(parsed.parts).toEqual(['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
  });

  it('has per-message and per-recipient fields', () => {
    const { blocks } = parseWithPython(buildDsn(options()));
    expect(blocks.length).toBe(2);
    expect(blocks[0]).toMatchObject({
      'Reporting-MTA': 'dns; mx.herald.test',
      'X-Herald-Queue-ID': '4bX9kq2m7Hz1',
      'Arrival-Date': 'Tue, 01 Dec 2026 10:00:00 +0000',
    });
    expect(blocks[1]).toMatchObject({
      'Original-Recipient': 'rfc822; info@hosted.example',
      'Final-Recipient': 'rfc822; target@example.net',
      Action: 'failed',
      Status: '5.1.1',
      'Remote-MTA': 'dns; mx1.example.net',
      'Last-Attempt-Date': 'Tue, 01 Dec 2026 10:04:59 +0000',
    });
    expect(blocks[1]!['Diagnostic-Code']!.replace(/\s+/g, ' ')).toBe(
      'smtp; 550-5.1.1 The email account does not exist. 550 5.1.1 Try again',
    );
  });

  it('returns the headers and not the body', () => {
    const dsn = buildDsn(options());
    const { headers } = parseWithPython(dsn);
    expect(headers).toContain('Subject: Quarterly report');
    expect(headers).toContain('Message-ID: <orig-1@example.org>');
    expect(dsn.toString()).not.toContain('secret body');
  });

  it('comes from MAILER-DAEMON with auto-submitted', async () => {
    const parsed = await simpleParser(buildDsn(options()));
    expect(parsed.from?.value[0]?.address).toBe('MAILER-DAEMON@mx.herald.test');
    expect(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value[0]?.address : '').toBe(
      'author@example.org',
    );
    expect(parsed.subject).toBe('Undelivered Mail Returned to Sender');
    expect(parsed.headers.get('auto-submitted')).toBe('auto-replied');
    expect(parsed.messageId).toMatch(/@mx\.herald\.test>$/);
    expect(parsed.text).toContain('<target@example.net>:');
    expect(parsed.text).toContain('host mx1.example.net said: 550-5.1.1');
    expect(parsed.text).toContain('4bX9kq2m7Hz1');
  });

  it('reports expiry and delay', () => {
    const expired = parseWithPython(
      buildDsn(
        options({
          recipients: [
            {
              recipient: 'a@example.net',
              action: 'failed',
              status: '4.4.7',
              diagnostic: 'message expired after 5 days in the queue',
            },
            {
              recipient: 'b@example.net',
              action: 'delayed',
              status: '4.4.1',
              willRetryUntil: new Date('2026-12-06T10:00:00Z'),
            },
          ],
        }),
      ),
    );
    expect(expired.blocks.length).toBe(3);
    expect(expired.blocks[1]).toMatchObject({
      Status: '4.4.7',
      'Diagnostic-Code': 'x-herald; message expired after 5 days in the queue',
    });
    expect(expired.blocks[1]!['Remote-MTA']).toBeUndefined();
    expect(expired.blocks[2]).toMatchObject({
      Action: 'delayed',
      'Will-Retry-Until': 'Sun, 06 Dec 2026 10:00:00 +0000',
    });
  });

  it('lines use CRLF and stay under 998 octets', () => {
    const long = 'x'.repeat(3000);
    const dsn = buildDsn(
      options({
        recipients: [
          { recipient: 'a@example.net', action: 'failed', status: '5.0.0', diagnostic: long },
        ],
      }),
    ).toString('latin1');
    expect(dsn.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    expect(dsn.split('\r\n').filter((line) => line.length > 998)).toEqual([]);
    expect(dsn).toContain(`${'x'.repeat(900)}...`);
  });

  it('marks 8-bit original headers', () => {
    const eight = Buffer.from('Subject: Grüße\r\nFrom: a@example.org\r\n\r\nbody\r\n', 'utf8');
    const dsn = buildDsn(options({ original: eight }));
    expect(dsn.toString('utf8')).toContain('Content-Transfer-Encoding: 8bit');
    expect(dsn.includes(Buffer.from('Subject: Grüße', 'utf8'))).toBe(true);
  });

  it('rejects the null sender', () => {
    expect(() => buildDsn(options({ to: '' }))).toThrow(/null sender/);
    expect(() => buildDsn(options({ recipients: [] }))).toThrow(/recipient/);
  });
});

describe('dsnQueueMessage', () => {
  it('uses the null sender and no bounce address', () => {
    const message = dsnQueueMessage(Buffer.from('x'), 'author@example.org');
    expect(message.originalSender).toBe('');
    expect(message.origin).toBe('bounce');
    expect(message.recipients).toEqual([
      { recipient: 'author@example.org', sender: '', bounceTo: '' },
    ]);
  });
});
