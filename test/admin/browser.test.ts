/**
 * The admin pages in a real browser: Debian's Chromium driven by playwright-core, against
 * Herald's HTTP app with the admin plugin, the distribution service, the campaign scheduler
 * and delivery workers, all on loopback. A loopback DNS server serves one correct and several
 * broken records of the domain; an SMTP sink receives the campaign. Screenshots of each page
 * go to `test-output/admin/`.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import pino from 'pino';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadConfig } from '../../src/config/load.js';
import { startDeliveryWorkers, type DeliveryWorkers } from '../../src/delivery/index.js';
import { createSigningPool, type SigningPool } from '../../src/dkim/index.js';
import { createCheckLookups } from '../../src/dns/check.js';
import { createResolver } from '../../src/dns/index.js';
import { FeedbackRecorder } from '../../src/distribution/feedback.js';
import {
  startCampaignScheduler,
  type CampaignScheduler,
} from '../../src/distribution/scheduler.js';
import { CampaignSender } from '../../src/distribution/sender.js';
import { DistributionService } from '../../src/distribution/service.js';
import { DEFAULT_DISTRIBUTION_SETTINGS } from '../../src/distribution/settings.js';
import type { ManagementContext } from '../../src/domains/context.js';
import { DkimKeyring } from '../../src/domains/keyring.js';
import { buildHttpApp } from '../../src/http/app.js';
import { Metrics } from '../../src/http/metrics.js';
import {
  openSqliteDistributionStore,
  type SqliteDistributionStore,
} from '../../src/store/distribution-sqlite.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/types.js';
import { startDnsServer, type DnsRecord, type DnsServer } from '../helpers/dns-server.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCREENSHOTS = join(ROOT, 'test-output', 'admin');
const TOKEN = 'browser-test-token-0123456789';
const HOST = 'mail.herald.test';
const DOMAIN = 'club.example';
const SUBSCRIBERS = 40;

let dir: string;
let dns: DnsServer;
let sink: SmtpSink;
let store: Store;
let distribution: SqliteDistributionStore;
let pool: SigningPool;
let scheduler: CampaignScheduler;
let delivery: DeliveryWorkers;
let app: ReturnType<typeof buildHttpApp>;
let base: string;
let browser: BrowserContext;
let page: Page;
const foreignRequests: string[] = [];

/** The current value of a <progress> element, as the page script set it. */
function progressValue(selector: string): Promise<number> {
  return page
    .locator(selector)
    .evaluate((element) => (element as unknown as { value: number }).value);
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'herald-admin-browser-'));
  sink = await startSmtpSink({ host: '127.0.0.1' });
  dns = await startDnsServer({ records: [] });

  const file = join(dir, 'herald.db');
  store = await openStore({ url: `sqlite:${file}` });
  distribution = await openSqliteDistributionStore(file);
  const context: ManagementContext = {
    store,
    dataDir: dir,
    hostname: HOST,
    srsDomain: 'srs.herald.test',
  };
  const { keyring } = await DkimKeyring.load(store);
  pool = createSigningPool({ size: 1 });
  const settings = { ...DEFAULT_DISTRIBUTION_SETTINGS, batchSize: 10 };
  const recorder = new FeedbackRecorder(distribution, settings.softBounceThreshold);
  const logger = pino({ level: 'silent' });
  const config = loadConfig(undefined, {});
  const deliveryConfig = { hostname: HOST, delivery: { ...config.delivery, port: sink.port } };
  const resolver = createResolver({ servers: [dns.address], timeoutMs: 1000 });
  delivery = startDeliveryWorkers({
    store,
    resolver,
    config: deliveryConfig,
    logger,
    maxSleepMs: 200,
  });
  const sender = new CampaignSender({
    store,
    distribution,
    signer: pool,
    keys: keyring,
    settings,
    recorder,
    notify: () => delivery.notify(),
  });
  scheduler = startCampaignScheduler({ distribution, sender, intervalMs: 300 });
  const service = new DistributionService({ store, distribution, sender });
  const lookups = createCheckLookups({ servers: [dns.address], timeoutMs: 1000, tries: 1 });

  app = buildHttpApp({
    context,
    metrics: new Metrics(),
    tokens: [TOKEN],
    admin: {
      context,
      lookups,
      tokens: [TOKEN],
      distribution: service,
      onChange: async () => {
        await keyring.reload();
      },
      onRetry: () => delivery.notify(),
      onCampaignStarted: () => scheduler.wake(),
      secureCookies: false,
      node: delivery.owner,
    },
  });
  base = await app.listen({ host: '127.0.0.1', port: 0 });

  // A new empty profile in the temporary directory; Debian's Chromium, never a download.
  browser = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1200, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  // Every request the page makes must go to Herald itself.
  page.on('request', (request) => {
    if (!request.url().startsWith(base) && !request.url().startsWith('data:')) {
      foreignRequests.push(request.url());
    }
  });
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await scheduler?.stop();
  await delivery?.stop();
  await pool?.close();
  await distribution?.close();
  await store?.close();
  await dns?.close();
  await sink?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('admin pages in Chromium', () => {
  it('rejects a wrong password and explains it', async () => {
    await page.goto(`${base}/admin`);
    expect(new URL(page.url()).pathname).toBe('/admin/login');
    await page.fill('#username', 'admin');
    await page.fill('#password', 'wrong');
    await page.click('button[type=submit]');
    expect(await page.locator('#error-summary').innerText()).toContain(
      'user name or password is wrong',
    );
    await shot('01-login-error');
  });

  it('signs in with the keyboard alone', async () => {
    await page.goto(`${base}/admin/login`);
    await shot('02-login');
    await page.keyboard.press('Tab'); // skip link
    await page.keyboard.press('Tab'); // brand link
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe(
      'username',
    );
    await page.keyboard.type('admin');
    await page.keyboard.press('Tab');
    await page.keyboard.type(TOKEN);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${base}/admin/domains`);
  });

  it('explains an invalid domain name', async () => {
    await page.fill('#name', 'http://club example');
    await page.click('form[action="/admin/domains"] button');
    expect(await page.locator('#name-error').innerText()).toContain('Enter a domain name such as');
    expect(await page.getAttribute('#name', 'aria-invalid')).toBe('true');
    await shot('03-domain-error');
  });

  it('adds a domain and shows its records', async () => {
    await page.fill('#name', DOMAIN);
    await page.click('form[action="/admin/domains"] button');
    await page.waitForURL(`${base}/admin/domains/${DOMAIN}?**`);
    const table = await page.locator('table.records').innerText();
    expect(table).toMatch(/h\d{8}r\._domainkey/);
    expect(table).toContain('v=DMARC1');
    expect(await page.locator('button.copy:visible').count()).toBeGreaterThan(10);
    await shot('04-domain-records');
  });

  it('runs the DNS check and shows each finding', async () => {
    const domain = await store.getDomain(DOMAIN);
    const keys = await store.listDkimKeys(domain!.id);
    const rsa = keys.find((key) => key.algorithm === 'rsa-sha256')!;
    const ed = keys.find((key) => key.algorithm === 'ed25519-sha256')!;
    const records: DnsRecord[] = [
      { name: HOST, type: 'A', address: '127.0.0.1' },
      // Correct: the RSA key, split into 255-octet strings.
      {
        name: `${rsa.selector}._domainkey.${DOMAIN}`,
        type: 'TXT',
        value: rsa.publicRecord.match(/.{1,255}/g)!,
      },
      // Broken: quotes pasted into the Ed25519 value.
      { name: `${ed.selector}._domainkey.${DOMAIN}`, type: 'TXT', value: `"${ed.publicRecord}"` },
      // Broken: MX at another provider.
      { name: DOMAIN, type: 'MX', priority: 10, exchange: 'mx.elsewhere.test' },
      // Broken: two SPF records.
      { name: DOMAIN, type: 'TXT', value: `v=spf1 a:${HOST} ~all` },
      { name: DOMAIN, type: 'TXT', value: 'v=spf1 include:_spf.elsewhere.test ~all' },
      // Broken: malformed DMARC.
      { name: `_dmarc.${DOMAIN}`, type: 'TXT', value: 'v=DMARC1; p=block' },
      // Correct: the SRS domain's MX; its SPF is missing.
      { name: 'srs.herald.test', type: 'MX', priority: 10, exchange: HOST },
      { name: HOST, type: 'TXT', value: 'v=spf1 a -all' },
      // The campaign's subscribers receive at the sink.
      { name: 'members.test', type: 'MX', priority: 10, exchange: 'sink.members.test' },
      { name: 'sink.members.test', type: 'A', address: '127.0.0.1' },
    ];
    dns.set(records);
    await page.click('text=Check DNS now');
    await page.waitForURL(`${base}/admin/domains/${DOMAIN}/check`);
    const status = (name: string, purpose: string) =>
      page
        .locator(`li.check[data-name="${name}"]`, { hasText: purpose })
        .getAttribute('data-status');
    expect(await status(`${rsa.selector}._domainkey.${DOMAIN}`, 'DKIM')).toBe('ok');
    const codes: (string | null)[] = [];
    for (const finding of await page.locator('li.finding').all()) {
      codes.push(await finding.getAttribute('data-code'));
    }
    expect(codes).toEqual(
      expect.arrayContaining([
        'quotes',
        'value-differs',
        'several-records',
        'malformed',
        'missing',
      ]),
    );
    const text = await page.locator('main').innerText();
    expect(text).toContain('The value contains quote characters');
    expect(text).toContain('mx.elsewhere.test');
    expect(text).toContain('2 SPF records are published');
    expect(text).toContain('p=block is not one of none, quarantine, reject');
    expect(text).toContain('No SPF record is published at srs.herald.test');
    expect(await page.locator('[data-requirement="dkim"]').innerText()).toContain('Met');
    expect(await page.locator('[data-requirement="dmarc"]').innerText()).toContain('Not met');
    await shot('05-dns-check');
  });

  it('starts a key rotation', async () => {
    await page.goto(`${base}/admin/domains/${DOMAIN}`);
    await page.click('text=Start a key rotation');
    expect(await page.locator('.rotation-stage').getAttribute('data-stage')).toBe(
      'waiting-for-dns',
    );
    await shot('06-rotation');
  });

  it('adds an alias and explains a bad target', async () => {
    await page.goto(`${base}/admin/aliases`);
    await page.fill('#address', `info@${DOMAIN}`);
    await page.fill('#targets', 'not-an-address');
    await page.click('form[action="/admin/aliases"] button');
    expect(await page.locator('#error-summary').innerText()).toContain('invalid target address');
    await page.fill('#targets', 'chair@members.test');
    await page.click('form[action="/admin/aliases"] button');
    expect(await page.locator('main').innerText()).toContain('chair@members.test');
    await shot('07-aliases');
  });

  it('creates an organisation owning the domain', async () => {
    await page.goto(`${base}/admin/organisations`);
    await page.fill('#name', 'Rowing Club');
    await page.click('form[action="/admin/organisations"] button');
    await page.click('form[action$="/domains"] button');
    expect(await page.locator('table').innerText()).toContain(DOMAIN);
    await shot('08-organisations');
  });

  it('adds a member user', async () => {
    await page.goto(`${base}/admin/users`);
    await page.fill('#username', 'secretary');
    await page.fill('#password', 'short');
    await page.click('form[action="/admin/users"] button');
    expect(await page.locator('#password-error').innerText()).toContain('at least 10 characters');
    await page.fill('#password', 'a long enough password');
    await page.selectOption('#organisationId', { label: 'Rowing Club' });
    await page.click('form[action="/admin/users"] button');
    expect(await page.locator('table').innerText()).toContain('secretary');
    await shot('09-users');
  });

  it('creates a list and imports a CSV with progress', async () => {
    await page.goto(`${base}/admin/lists`);
    await page.fill('#name', 'Members');
    await page.click('form[action="/admin/lists"] button');
    await page.waitForURL(/\/admin\/lists\/\d+/);
    await shot('10-list');
    const rows = Array.from(
      { length: SUBSCRIBERS },
      (_, index) => `member${index}@members.test,Member ${index}`,
    );
    const csv = ['email,name', ...rows, 'not-an-address,Broken'].join('\n');
    await page.setInputFiles('#csv-file', {
      name: 'members.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(csv),
    });
    await page.click('#import-form button[type=submit]');
    await expect.poll(() => progressValue('#import-bar'), { timeout: 20_000 }).toBe(100);
    await page.waitForSelector('#import-status a');
    const status = await page.locator('#import-status').innerText();
    expect(status).toContain(`${SUBSCRIBERS} imported`);
    expect(status).toContain('1 rejected');
    await shot('11-import');
    await page.click('#import-status a');
    expect(await page.locator('#subscribers tbody tr').count()).toBe(SUBSCRIBERS);
  });

  it('composes, previews and sends a campaign to 100%', async () => {
    await page.goto(`${base}/admin/campaigns/new`);
    await page.click('form.composer button[type=submit]');
    const errors = await page.locator('#error-summary').innerText();
    expect(errors).toContain('Enter a name for the campaign');
    expect(errors).toContain('Write the HTML body');
    await shot('12-composer-errors');

    await page.fill('#name', 'Spring regatta');
    await page.fill('#fromAddress', `news@${DOMAIN}`);
    await page.fill('#fromName', 'Rowing Club');
    await page.fill('#subject', 'Regatta on Saturday, {{name}}');
    await page.fill('#html', '<p>Hello {{name}}, the regatta starts at 10.</p>');
    await shot('13-composer');
    await page.click('form.composer button[type=submit]');
    await page.waitForURL(/\/admin\/campaigns\/\d+/);
    const preview = page.frameLocator('iframe.preview');
    expect(await preview.locator('body').innerText()).toContain('the regatta starts at 10');

    await page.fill('#addresses', 'tester@members.test');
    await page.click('form[action$="/test"] button');
    expect(await page.locator('.notice').innerText()).toContain('Test message queued');

    await page.click('text=Send now');
    await expect.poll(() => progressValue('#campaign-bar'), { timeout: 30_000 }).toBe(100);
    expect(await page.locator('#campaign-percent').innerText()).toContain(
      `100% · ${SUBSCRIBERS} of ${SUBSCRIBERS} sent`,
    );
    await shot('14-campaign-sending');

    // The sink receives every message; the report then charts the deliveries.
    await sink.waitForMessages(SUBSCRIBERS + 1);
    await expect
      .poll(
        async () => {
          await page.reload();
          return page.locator('.chart svg polyline').count();
        },
        { timeout: 20_000, interval: 1000 },
      )
      .toBe(3);
    expect(await page.locator('.chart title').textContent()).toMatch(/Delivered \d+/);
    await shot('15-campaign-report');
  });

  it('shows the queue and searches the event log', async () => {
    await page.goto(`${base}/admin/queue?status=delivered`);
    expect(await page.locator('#queue tbody tr').count()).toBeGreaterThan(0);
    await shot('16-queue');
    await page.goto(`${base}/admin/events`);
    await page.fill('#q', 'delivered');
    await page.click('form[role=search] button');
    expect(await page.locator('#events tbody tr').count()).toBeGreaterThan(0);
    await shot('17-events');
  });

  it('shows the node that serves the pages', async () => {
    await page.click('nav a[href="/admin/nodes"]');
    await page.waitForURL(`${base}/admin/nodes`);
    expect(await page.locator('#nodes tbody tr').count()).toBe(1);
    const text = await page.locator('main').innerText();
    expect(text).toContain('this is the only node');
    expect(text).toContain(`${delivery.owner} (this node)`);
    await shot('17-nodes');
  });

  it('lists domains, lists and campaigns', async () => {
    for (const [path, name] of [
      ['/admin/domains', '18-domains'],
      ['/admin/lists', '19-lists'],
      ['/admin/campaigns', '20-campaigns'],
    ] as const) {
      await page.goto(`${base}${path}`);
      expect(await page.locator('nav a[aria-current="page"]').count()).toBe(1);
      await shot(name);
    }
    expect(await page.locator('main table').innerText()).toContain('Spring regatta');
  });

  it('loads nothing from another host', () => {
    expect(foreignRequests).toEqual([]);
  });

  it('rejects a form without its CSRF token', async () => {
    const response = await page.request.post(`${base}/admin/domains`, {
      form: { name: 'forged.example' },
    });
    expect(response.status()).toBe(403);
    expect(await store.getDomain('forged.example')).toBeUndefined();
  });
});
