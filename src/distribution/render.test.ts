import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';

import { compileCampaign, composeMessage, renderContent, type Envelope } from './compose.js';
import { encodeQuotedPrintable } from './encode.js';
import { htmlToText } from './html-text.js';
import { compileTemplate, escapeHtml, renderTemplate, sanitizeHeaderValue } from './render.js';

describe('renderTemplate', () => {
  it('substitutes fields and defaults', () => {
    const template = compileTemplate('Hi {{ first_name | friend }}, from {{city|"the world"}}.');
    expect(template.fields).toEqual(['first_name', 'city']);
    expect(renderTemplate(template, { first_name: 'Ann', city: 'Oslo' })).toBe(
      'Hi Ann, from Oslo.',
    );
    expect(renderTemplate(template, {})).toBe('Hi friend, from the world.');
    expect(renderTemplate(template, { first_name: '' })).toBe('Hi friend, from the world.');
  });

  it('leaves text without fields unchanged', () => {
    expect(renderTemplate(compileTemplate('a { b } {{ c'), {})).toBe('a { b } {{ c');
  });

  it('escapes values but not the template in HTML', () => {
    const template = compileTemplate('<p title="{{name}}">{{name}}</p>');
    const html = renderTemplate(template, { name: `<script>"x"&'y'</script>` }, escapeHtml);
    expect(html).toBe(
      '<p title="&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;">' +
        '&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;</p>',
    );
  });

  it('removes line breaks from header values', () => {
    expect(sanitizeHeaderValue('Ann\r\nBcc: victim@example.net')).toBe(
      'Ann Bcc: victim@example.net',
    );
    expect(sanitizeHeaderValue('a\u0000\tb')).toBe('a b');
  });
});

describe('htmlToText', () => {
  it('keeps structure, links and entities', () => {
    const html =
      '<html><head><title>T</title><style>p{}</style></head><body>' +
      '<h1>News &amp; notes</h1><p>Hello&nbsp;<b>Ann</b>,<br>read <a href="https://example.org/a">this</a>.</p>' +
      '<ul><li>one</li><li>two &#8212; &#x263A;</li></ul><script>alert(1)</script></body></html>';
    expect(htmlToText(html)).toBe(
      'News & notes\n\nHello Ann,\nread this <https://example.org/a>.\n\n- one\n- two \u2014 \u263a',
    );
  });

  it('shows a bare link once', () => {
    expect(htmlToText('<a href="https://x.example/">https://x.example/</a>')).toBe(
      '<https://x.example/>',
    );
  });
});

function decodeQuotedPrintable(encoded: string): string {
  const bytes = encoded
    .replace(/=\r\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

describe('encodeQuotedPrintable', () => {
  it('round-trips random text with short lines and no bare spaces at line ends', () => {
    const alphabet = ['a', 'Z', '=', ' ', '\t', '\n', 'é', '€', '😀', '.', '~'];
    let seed = 7;
    const random = (limit: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % limit;
    };
    for (let round = 0; round < 200; round++) {
      let text = '';
      const size = random(400);
      for (let i = 0; i < size; i++) text += alphabet[random(alphabet.length)];
      const encoded = encodeQuotedPrintable(text);
      for (const line of encoded.split('\r\n')) {
        expect(line.length).toBeLessThanOrEqual(76);
        expect(line).not.toMatch(/[ \t]$/);
      }
      expect(decodeQuotedPrintable(encoded)).toBe(text.replace(/\n/g, '\r\n'));
    }
  });

  it('round-trips texts larger than its scratch buffer', () => {
    // 75,000 UTF-16 code units (150,000 bytes of UTF-8) are past the 64 KiB input scratch.
    const large = 'é€\n'.repeat(25_000);
    const small = 'after = large\n';
    const encodedLarge = encodeQuotedPrintable(large);
    const encodedSmall = encodeQuotedPrintable(small);
    expect(decodeQuotedPrintable(encodedLarge)).toBe(large.replace(/\n/g, '\r\n'));
    expect(encodedSmall).toBe('after =3D large\r\n');
  });

  it('keeps lines within 76 characters and round-trips', () => {
    const text = `${'é'.repeat(60)} end \nnext= line\t`;
    const encoded = encodeQuotedPrintable(text);
    for (const line of encoded.split('\r\n')) expect(line.length).toBeLessThanOrEqual(76);
    const decoded = Buffer.from(
      encoded
        .replace(/=\r\n/g, '')
        .replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))),
      'latin1',
    ).toString('utf8');
    expect(decoded).toBe(text.replace(/\n/g, '\r\n'));
  });
});

describe('composeMessage', () => {
  const envelope: Envelope = {
    from: { name: 'Föreningen', address: 'news@example.org' },
    replyTo: 'office@example.org',
    to: { name: 'Ann\r\nBcc: victim@example.net', address: 'ann@example.net' },
    listId: 'list3.example.org',
    listName: 'Members',
    unsubscribeUrl: 'https://herald.example.org/u/1.2.abc',
    unsubscribeMailto: 'unsubscribe+1.2.abc@example.org',
    feedbackId: 'c1:o1:herald',
    date: new Date('2026-12-03T10:00:00Z'),
  };

  it('builds a message that a MIME parser reads back', async () => {
    const templates = compileCampaign({
      subject: 'Hello {{first_name|friend}} — news\nX-Injected: yes',
      html: '<p>Dear {{first_name}},</p><p><a href="{{unsubscribe_url}}">Unsubscribe</a></p>',
      text: '',
    });
    const content = renderContent(templates, {
      first_name: 'Ann <&>',
      unsubscribe_url: envelope.unsubscribeUrl,
    });
    const message = composeMessage(content, envelope);
    const parsed = await simpleParser(message);

    expect(parsed.subject).toBe('Hello Ann <&> — news X-Injected: yes');
    expect(parsed.headers.has('x-injected')).toBe(false);
    expect(parsed.headers.has('bcc')).toBe(false);
    expect(parsed.from?.value[0]).toEqual({ address: 'news@example.org', name: 'Föreningen' });
    expect(parsed.text?.trim()).toBe(`Dear Ann <&>,\n\nUnsubscribe <${envelope.unsubscribeUrl}>`);
    expect(parsed.html).toContain('<p>Dear Ann &lt;&amp;&gt;,</p>');
    const raw = message.toString('utf8');
    expect(raw).toContain('List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n');
    expect(raw).toContain(
      'List-Unsubscribe: <https://herald.example.org/u/1.2.abc>,\r\n <mailto:unsubscribe+1.2.abc@example.org>\r\n',
    );
    expect(raw).toContain('List-Id: Members <list3.example.org>\r\n');
    expect(raw).toContain('Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n');
    expect(raw).not.toMatch(/(^|[^\r])\n/);
  });
});
