/**
 * Distribution pages: lists and subscribers with CSV import (a progress bar while a file is
 * imported), and campaigns: the composer, preview, test send, sending with a live progress
 * bar, and the report with its chart. They call the distribution service as the signed-in
 * principal, so members see only their organisation.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { simpleParser } from 'mailparser';

import type { ImportSummary } from '../../distribution/csv-import.js';
import type { CampaignProgress } from '../../distribution/progress.js';
import type { DistributionService } from '../../distribution/service.js';
import type { Campaign } from '../../distribution/types.js';

import { deliveryChart } from './chart.js';
import {
  formValue,
  principalOf,
  redirect,
  sendPage,
  sessionOf,
  type AdminState,
} from './context.js';
import { csrfField, errorSummary, field, formatTime, html, type Html } from './html.js';

type Params = Record<string, string>;
type FormErrors = { field: string; message: string }[];

/** A CSV import running in the background, polled by the page's progress bar. */
interface ImportJob {
  listId: number;
  owner: string;
  totalRows: number;
  summary: ImportSummary;
  done: boolean;
  error?: string;
}

/** Finished jobs are kept this long for the page to read their result. */
const JOB_RETENTION_MS = 10 * 60 * 1000;
const MAX_JOBS = 100;

function numberParam(request: FastifyRequest, name: string): number {
  const value = Number((request.params as Params)[name]);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw Object.assign(new Error(`invalid ${name} ${(request.params as Params)[name]}`), {
      name: 'InvalidRequestError',
    });
  }
  return value;
}

function unavailable(request: FastifyRequest, reply: FastifyReply, title: string, section: string) {
  return sendPage(
    request,
    reply,
    { title, section },
    html`<p>
      This server runs without the distribution service, so lists and campaigns are not available
      here.
    </p>`,
  );
}

/** Percentage of a campaign's recipients handled: handed to the queue, or suppressed. */
export function campaignPercent(progress: CampaignProgress): number {
  if (progress.total === 0) return 100;
  return Math.floor((100 * (progress.total - progress.remaining)) / progress.total);
}

export function registerDistributionPages(app: FastifyInstance, state: AdminState): void {
  const jobs = new Map<string, ImportJob>();
  const service = state.distribution;

  app.get('/admin/lists', async (request, reply) => {
    if (!service) return unavailable(request, reply, 'Lists', 'lists');
    return sendPage(
      request,
      reply,
      { title: 'Lists', section: 'lists' },
      await listsPage(service, request),
    );
  });

  app.post('/admin/lists', async (request, reply) => {
    if (!service) return unavailable(request, reply, 'Lists', 'lists');
    const session = sessionOf(request);
    const name = formValue(request.body, 'name');
    const organisationId =
      session.user.role === 'admin'
        ? Number(formValue(request.body, 'organisationId'))
        : (session.user.organisationId ?? 0);
    const errors: FormErrors = [];
    if (name === '') errors.push({ field: 'name', message: 'Enter a name for the list.' });
    if (!Number.isSafeInteger(organisationId) || organisationId <= 0) {
      errors.push({
        field: 'organisationId',
        message:
          'Choose the organisation that owns the list; create one under Organisations first.',
      });
    }
    if (errors.length === 0) {
      const list = await service.createList(
        principalOf(session),
        organisationId,
        name,
        formValue(request.body, 'description'),
      );
      return redirect(reply, `/admin/lists/${list.id}`, `List ${list.name} created.`);
    }
    return sendPage(
      request,
      reply,
      { title: 'Lists', section: 'lists' },
      await listsPage(service, request, { name, errors }),
      400,
    );
  });

  app.get('/admin/lists/:id', async (request, reply) => {
    if (!service) return unavailable(request, reply, 'Lists', 'lists');
    return listPage(service, request, reply);
  });

  app.post('/admin/lists/:id/subscribers', async (request, reply) => {
    if (!service) return unavailable(request, reply, 'Lists', 'lists');
    const id = numberParam(request, 'id');
    const address = formValue(request.body, 'address');
    try {
      await service.addSubscriber(principalOf(sessionOf(request)), id, {
        address,
        name: formValue(request.body, 'name'),
      });
    } catch (error) {
      if ((error as Error).name !== 'InvalidRequestError') throw error;
      return listPage(
        service,
        request,
        reply,
        [
          {
            field: 'address',
            message: `${(error as Error).message}. Enter an address such as name@example.com.`,
          },
        ],
        400,
      );
    }
    return redirect(reply, `/admin/lists/${id}`, `${address} added.`);
  });

  // CSV text arrives as text/csv from the page script (with a progress bar) or as a form field.
  app.addContentTypeParser(
    'text/csv',
    { parseAs: 'string', bodyLimit: 50 * 1024 * 1024 },
    (_request, body, done) => done(null, body),
  );

  app.post('/admin/lists/:id/import', async (request, reply) => {
    if (!service) return unavailable(request, reply, 'Lists', 'lists');
    const id = numberParam(request, 'id');
    const principal = principalOf(sessionOf(request));
    await service.getList(principal, id);
    const fromScript = typeof request.body === 'string';
    const text = fromScript ? (request.body as string) : formValue(request.body, 'csv');
    if (text === '') {
      if (fromScript) return reply.code(400).send({ error: 'The file is empty.' });
      return listPage(
        service,
        request,
        reply,
        [
          {
            field: 'csv',
            message: 'Choose a CSV file or paste CSV text with a header row such as "email,name".',
          },
        ],
        400,
      );
    }
    const job = startImport(service, jobs, {
      listId: id,
      owner: sessionOf(request).user.username,
      text,
      principal,
    });
    if (fromScript) return reply.code(202).send({ job: job.id, totalRows: job.job.totalRows });
    await job.finished;
    const { summary } = job.job;
    return redirect(
      reply,
      `/admin/lists/${id}`,
      `Imported ${summary.imported} of ${summary.rows} rows: ${summary.duplicates} already listed, ${summary.rejected} rejected.`,
    );
  });

  app.get('/admin/imports/:job.json', (request, reply) => {
    const job = jobs.get((request.params as Params).job ?? '');
    if (!job || job.owner !== sessionOf(request).user.username)
      return reply.code(404).send({ error: 'import not found' });
    return reply.send({
      totalRows: job.totalRows,
      ...job.summary,
      done: job.done,
      error: job.error ?? null,
    });
  });

  registerCampaignPages(app, state);
}

function startImport(
  service: DistributionService,
  jobs: Map<string, ImportJob>,
  input: { listId: number; owner: string; text: string; principal: ReturnType<typeof principalOf> },
): { id: string; job: ImportJob; finished: Promise<void> } {
  for (const [key, old] of jobs) {
    if (jobs.size < MAX_JOBS) break;
    if (old.done) jobs.delete(key);
  }
  const id = randomBytes(12).toString('base64url');
  const totalRows = Math.max(
    0,
    input.text.split(/\r?\n/).filter((line) => line.trim() !== '').length - 1,
  );
  const job: ImportJob = {
    listId: input.listId,
    owner: input.owner,
    totalRows,
    summary: { rows: 0, imported: 0, duplicates: 0, rejected: 0, rejects: [] },
    done: false,
  };
  jobs.set(id, job);
  const finished = service
    .importCsv(input.principal, input.listId, Readable.from([input.text]), {
      batchSize: 200,
      maxReportedRejects: 50,
      onProgress: (summary) => {
        job.summary = { ...summary, rejects: [...summary.rejects] };
      },
    })
    .then((summary) => {
      job.summary = summary;
    })
    .catch((error: unknown) => {
      job.error = (error as Error).message;
    })
    .finally(() => {
      job.done = true;
      setTimeout(() => jobs.delete(id), JOB_RETENTION_MS).unref();
    });
  return { id, job, finished };
}

async function listsPage(
  service: DistributionService,
  request: FastifyRequest,
  form: { name?: string; errors?: FormErrors } = {},
): Promise<Html> {
  const session = sessionOf(request);
  const principal = principalOf(session);
  const lists = await service.listLists(principal);
  const organisations = await service.listOrganisations(principal);
  const errorFor = (name: string) => form.errors?.find((error) => error.field === name)?.message;
  return html`${
      lists.length === 0
        ? html`<p>No list yet.</p>`
        : html`<ul class="cards">
            ${lists.map((list) => html`<li><a href="/admin/lists/${list.id}">${list.name}</a> <span class="hint">${list.description}</span></li>`)}
          </ul>`
    }
    <h2>Create a list</h2>
    ${errorSummary(form.errors ?? [])}
    <form novalidate method="post" action="/admin/lists" class="narrow">
      ${csrfField(session.csrf)}
      ${field({ name: 'name', label: 'List name', value: form.name ?? '', required: true, ...(errorFor('name') ? { error: errorFor('name') } : {}) })}
      ${field({ name: 'description', label: 'Description' })}
      ${
        session.user.role === 'admin'
          ? html`<div class="field${errorFor('organisationId') ? ' invalid' : ''}">
              <label for="organisationId">Organisation</label>
              ${errorFor('organisationId') ? html`<p class="error" id="organisationId-error">${errorFor('organisationId')}</p>` : ''}
              <select id="organisationId" name="organisationId">
                ${organisations.map((org) => html`<option value="${org.id}">${org.name}</option>`)}
              </select>
            </div>`
          : ''
      }
      <button type="submit">Create list</button>
    </form>`;
}

async function listPage(
  service: DistributionService,
  request: FastifyRequest,
  reply: FastifyReply,
  errors: FormErrors = [],
  status = 200,
) {
  const id = numberParam(request, 'id');
  const session = sessionOf(request);
  const principal = principalOf(session);
  const list = await service.getList(principal, id);
  const page = await service.listSubscribers(principal, id, { limit: 100 });
  const errorFor = (name: string) => errors.find((error) => error.field === name)?.message;
  return sendPage(
    request,
    reply,
    { title: `List ${list.name}`, section: 'lists' },
    html`${errorSummary(errors)}
      <section aria-labelledby="import-heading">
        <h2 id="import-heading">Import subscribers from CSV</h2>
        <form
          method="post"
          action="/admin/lists/${id}/import"
          class="narrow"
          id="import-form"
          data-list="${id}"
        >
          ${csrfField(session.csrf)}
          <div class="field">
            <label for="csv-file">CSV file</label>
            <p class="hint" id="csv-file-hint">
              A header row with an email (or address) column; a name column and other columns are
              optional.
            </p>
            <input
              type="file"
              id="csv-file"
              accept=".csv,text/csv"
              aria-describedby="csv-file-hint"
            />
          </div>
          ${field({ name: 'csv', label: 'Or paste CSV text', type: 'textarea', ...(errorFor('csv') ? { error: errorFor('csv') } : {}) })}
          <button type="submit">Import</button>
          <div class="progress" hidden id="import-progress">
            <label for="import-bar">Import progress</label>
            <progress id="import-bar" max="100" value="0">0%</progress>
            <p id="import-status" role="status" aria-live="polite"></p>
          </div>
        </form>
      </section>
      <section aria-labelledby="add-heading">
        <h2 id="add-heading">Add one subscriber</h2>
        <form novalidate method="post" action="/admin/lists/${id}/subscribers" class="narrow">
          ${csrfField(session.csrf)}
          ${field({ name: 'address', label: 'Address', type: 'email', required: true, ...(errorFor('address') ? { error: errorFor('address') } : {}) })}
          ${field({ name: 'name', label: 'Name' })}
          <button type="submit">Add</button>
        </form>
      </section>
      <section aria-labelledby="subscribers-heading">
        <h2 id="subscribers-heading">Subscribers</h2>
        ${
          page.subscribers.length === 0
            ? html`<p>No subscriber yet.</p>`
            : html`<div class="table-wrap">
                  <table id="subscribers">
                    <thead>
                      <tr>
                        <th scope="col">Address</th>
                        <th scope="col">Name</th>
                        <th scope="col">Status</th>
                        <th scope="col">Added</th>
                      </tr>
                    </thead>
                    <tbody>
                      ${page.subscribers.map(
                        (subscriber) =>
                          html`<tr>
                            <td>${subscriber.address}</td>
                            <td>${subscriber.name}</td>
                            <td>${subscriber.status}</td>
                            <td>${formatTime(subscriber.createdAt)}</td>
                          </tr>`,
                      )}
                    </tbody>
                  </table>
                </div>
                ${page.nextAfterId !== null ? html`<p class="hint">The first 100 are shown; export the list through the API for all of them.</p>` : ''}`
        }
      </section>`,
    status,
  );
}

function registerCampaignPages(app: FastifyInstance, state: AdminState): void {
  const service = state.distribution;

  app.get('/admin/campaigns', async (request, reply) => {
    if (!service) return unavailable(request, reply, 'Campaigns', 'campaigns');
    const campaigns = await service.listCampaigns(principalOf(sessionOf(request)));
    return sendPage(
      request,
      reply,
      { title: 'Campaigns', section: 'campaigns' },
      html`<p><a class="button" href="/admin/campaigns/new">Compose a campaign</a></p>
        ${
          campaigns.length === 0
            ? html`<p>No campaign yet.</p>`
            : html`<div class="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Subject</th>
                      <th scope="col">Status</th>
                      <th scope="col">Created</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${campaigns.map(
                      (campaign) =>
                        html`<tr>
                          <td><a href="/admin/campaigns/${campaign.id}">${campaign.name}</a></td>
                          <td>${campaign.subject}</td>
                          <td>${campaign.status}</td>
                          <td>${formatTime(campaign.createdAt)}</td>
                        </tr>`,
                    )}
                  </tbody>
                </table>
              </div>`
        }`,
    );
  });

  app.get('/admin/campaigns/new', async (request, reply) => {
    if (!service) return unavailable(request, reply, 'Campaigns', 'campaigns');
    return sendPage(
      request,
      reply,
      { title: 'Compose a campaign', section: 'campaigns' },
      await composer(service, request, {}),
    );
  });

  app.post('/admin/campaigns', async (request, reply) => {
    if (!service) return unavailable(request, reply, 'Campaigns', 'campaigns');
    const body = request.body;
    const form: ComposerForm = Object.fromEntries(
      COMPOSER_FIELDS.map((name) => [name, formValue(body, name)]),
    );
    const errors: FormErrors = [];
    const principal = principalOf(sessionOf(request));
    const listId = Number(form.listId);
    const rate = form.ratePerMinute === '' ? 0 : Number(form.ratePerMinute);
    if (!form.name)
      errors.push({ field: 'name', message: 'Enter a name for the campaign (only you see it).' });
    if (!form.subject)
      errors.push({ field: 'subject', message: 'Enter the subject line recipients will see.' });
    if (!form.fromAddress)
      errors.push({
        field: 'fromAddress',
        message: 'Enter the From address, at one of your organisation’s domains.',
      });
    if (!form.html) errors.push({ field: 'html', message: 'Write the HTML body of the message.' });
    if (!Number.isSafeInteger(rate) || rate < 0)
      errors.push({
        field: 'ratePerMinute',
        message: 'Enter the rate as a whole number of messages per minute, or 0 for no limit.',
      });
    let list;
    if (!Number.isSafeInteger(listId) || listId <= 0)
      errors.push({
        field: 'listId',
        message: 'Choose the list to send to; create one under Lists first.',
      });
    else list = await service.getList(principal, listId);
    if (errors.length === 0 && list) {
      try {
        const campaign = await service.createCampaign(principal, {
          organisationId: list.organisationId,
          listId,
          name: form.name ?? '',
          fromAddress: form.fromAddress ?? '',
          fromName: form.fromName ?? '',
          replyTo: form.replyTo ?? '',
          subject: form.subject ?? '',
          html: form.html ?? '',
          text: form.text ?? '',
          ratePerMinute: rate,
        });
        return redirect(
          reply,
          `/admin/campaigns/${campaign.id}`,
          'Campaign saved as a draft. Preview it and send a test before sending.',
        );
      } catch (error) {
        const name = (error as Error).name;
        if (name !== 'InvalidRequestError' && name !== 'NotFoundError' && name !== 'CampaignError')
          throw error;
        const message = (error as Error).message;
        const fieldName = /from/i.test(message)
          ? 'fromAddress'
          : /subject/i.test(message)
            ? 'subject'
            : 'html';
        errors.push({ field: fieldName, message: `${message}.` });
      }
    }
    return sendPage(
      request,
      reply,
      { title: 'Compose a campaign', section: 'campaigns' },
      await composer(service, request, form, errors),
      400,
    );
  });

  app.get('/admin/campaigns/:id', async (request, reply) => {
    if (!service) return unavailable(request, reply, 'Campaigns', 'campaigns');
    const id = numberParam(request, 'id');
    const principal = principalOf(sessionOf(request));
    const campaign = await service.getCampaign(principal, id);
    const report = await service.report(principal, id, 5000).catch(() => undefined);
    return sendPage(
      request,
      reply,
      { title: `Campaign ${campaign.name}`, section: 'campaigns' },
      campaignPage(campaign, report, sessionOf(request).csrf),
    );
  });

  app.get('/admin/campaigns/:id/progress.json', async (request, reply) => {
    if (!service) return reply.code(404).send({ error: 'distribution is not enabled' });
    const id = numberParam(request, 'id');
    const principal = principalOf(sessionOf(request));
    const campaign = await service.getCampaign(principal, id);
    const progress = await service.progress(principal, id);
    return reply.send({ status: campaign.status, percent: campaignPercent(progress), ...progress });
  });

  app.get('/admin/campaigns/:id/preview', async (request, reply) => {
    if (!service) return reply.code(404).send('distribution is not enabled');
    const id = numberParam(request, 'id');
    const message = await service.preview(principalOf(sessionOf(request)), id);
    const parsed = await simpleParser(message);
    const body =
      typeof parsed.html === 'string'
        ? parsed.html
        : `<pre>${(parsed.text ?? '').replace(/[<&]/g, (c) => (c === '<' ? '&lt;' : '&amp;'))}</pre>`;
    // The campaign's own HTML runs with no script, form or plugin: a sandbox without allowances.
    return reply
      .header(
        'content-security-policy',
        "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'",
      )
      .type('text/html; charset=utf-8')
      .send(body);
  });

  const action = (
    path: string,
    run: (service: DistributionService, request: FastifyRequest, id: number) => Promise<string>,
  ) => {
    app.post(`/admin/campaigns/:id/${path}`, async (request, reply) => {
      if (!service) return unavailable(request, reply, 'Campaigns', 'campaigns');
      const id = numberParam(request, 'id');
      try {
        return redirect(reply, `/admin/campaigns/${id}`, await run(service, request, id));
      } catch (error) {
        const name = (error as Error).name;
        if (name !== 'InvalidRequestError' && name !== 'CampaignError') throw error;
        return redirect(reply, `/admin/campaigns/${id}`, `${(error as Error).message}.`);
      }
    });
  };
  action('test', async (service, request, id) => {
    const addresses = formValue(request.body, 'addresses')
      .split(/[\s,]+/)
      .filter(Boolean);
    if (addresses.length === 0) return 'Enter at least one address for the test send.';
    const queued = await service.sendTest(principalOf(sessionOf(request)), id, addresses);
    return `Test message queued for ${addresses.join(', ')} (${queued.length} message(s)).`;
  });
  action('send', async (service, request, id) => {
    await service.send(principalOf(sessionOf(request)), id);
    state.onCampaignStarted?.();
    return 'Sending started.';
  });
  action('pause', async (service, request, id) => {
    await service.pause(principalOf(sessionOf(request)), id);
    return 'Sending paused.';
  });
  action('resume', async (service, request, id) => {
    await service.resume(principalOf(sessionOf(request)), id);
    state.onCampaignStarted?.();
    return 'Sending resumed.';
  });
  action('cancel', async (service, request, id) => {
    await service.cancel(principalOf(sessionOf(request)), id);
    return 'Campaign cancelled.';
  });
}

const COMPOSER_FIELDS = [
  'name',
  'listId',
  'fromAddress',
  'fromName',
  'replyTo',
  'subject',
  'html',
  'text',
  'ratePerMinute',
] as const;
type ComposerForm = Partial<Record<(typeof COMPOSER_FIELDS)[number], string>>;

async function composer(
  service: DistributionService,
  request: FastifyRequest,
  form: ComposerForm,
  errors: FormErrors = [],
): Promise<Html> {
  const session = sessionOf(request);
  const lists = await service.listLists(principalOf(session));
  const errorFor = (name: string) => errors.find((error) => error.field === name)?.message;
  const input = (
    name: (typeof COMPOSER_FIELDS)[number],
    label: string,
    extra: { type?: string; hint?: string; required?: boolean } = {},
  ) =>
    field({
      name,
      label,
      value: form[name] ?? '',
      ...extra,
      ...(errorFor(name) ? { error: errorFor(name) } : {}),
    });
  return html`${errorSummary(errors)}
    <form novalidate method="post" action="/admin/campaigns" class="composer">
      ${csrfField(session.csrf)}
      ${input('name', 'Campaign name', { required: true, hint: 'For your own reference.' })}
      <div class="field${errorFor('listId') ? ' invalid' : ''}">
        <label for="listId">Send to list</label>
        ${errorFor('listId') ? html`<p class="error" id="listId-error">${errorFor('listId')}</p>` : ''}
        <select id="listId" name="listId" required>
          ${lists.map((list) => html`<option value="${list.id}" ${String(list.id) === form.listId ? html` selected` : ''}>${list.name}</option>`)}
        </select>
      </div>
      ${input('fromAddress', 'From address', { type: 'email', required: true, hint: 'An address at a domain of the list’s organisation.' })}
      ${input('fromName', 'From name')} ${input('replyTo', 'Reply-To address', { type: 'email' })}
      ${input('subject', 'Subject', { required: true, hint: 'Merge fields such as {{name}} are replaced per subscriber.' })}
      ${input('html', 'HTML body', { type: 'textarea', required: true, hint: 'Herald adds the unsubscribe link and headers (RFC 8058) itself.' })}
      ${input('text', 'Plain-text body', { type: 'textarea', hint: 'Leave empty to generate it from the HTML.' })}
      ${input('ratePerMinute', 'Messages per minute', { type: 'number', hint: '0 sends as fast as signing and the per-domain limits allow.' })}
      <button type="submit">Save draft</button>
    </form>`;
}

function campaignPage(
  campaign: Campaign,
  report: Awaited<ReturnType<DistributionService['report']>> | undefined,
  csrf: string,
): Html {
  const post = (path: string, label: string) =>
    html`<form
      novalidate
      method="post"
      action="/admin/campaigns/${campaign.id}/${path}"
      class="inline"
    >
      ${csrfField(csrf)}<button type="submit">${label}</button>
    </form>`;
  const percent = report ? campaignPercent(report.progress) : 0;
  const buttons: Html[] = [];
  if (campaign.status === 'draft' || campaign.status === 'scheduled')
    buttons.push(post('send', 'Send now'));
  if (campaign.status === 'sending') buttons.push(post('pause', 'Pause'));
  if (campaign.status === 'paused') buttons.push(post('resume', 'Resume'));
  if (['draft', 'scheduled', 'sending', 'paused'].includes(campaign.status))
    buttons.push(post('cancel', 'Cancel'));
  return html`<dl class="facts">
      <dt>Status</dt>
      <dd id="campaign-status">${campaign.status}</dd>
      <dt>Subject</dt>
      <dd>${campaign.subject}</dd>
      <dt>From</dt>
      <dd>
        ${campaign.fromName ? `${campaign.fromName} <${campaign.fromAddress}>` : campaign.fromAddress}
      </dd>
      <dt>Started</dt>
      <dd>${formatTime(campaign.startedAt) || 'not yet'}</dd>
    </dl>
    <div class="actions">${buttons}</div>
    <section
      aria-labelledby="progress-heading"
      id="campaign-progress"
      data-campaign="${campaign.id}"
      data-status="${campaign.status}"
    >
      <h2 id="progress-heading">Progress</h2>
      <label for="campaign-bar">Messages handed to the queue</label>
      <progress id="campaign-bar" max="100" value="${percent}">${percent}%</progress>
      <p id="campaign-percent" role="status" aria-live="polite">
        ${percent}%${report ? ` · ${report.progress.sent} of ${report.progress.total} sent, ${report.progress.delivered} delivered, ${report.progress.deferred} deferred, ${report.progress.bounced} bounced` : ''}
      </p>
    </section>
    <section aria-labelledby="report-heading">
      <h2 id="report-heading">Report</h2>
      ${
        report
          ? html`${deliveryChart(report.events, 'Delivered, deferred and bounced over time')}
              ${
                report.warnings.length > 0
                  ? html`<ul class="warnings" role="alert">
                      ${report.warnings.map((warning) => html`<li>${warning}</li>`)}
                    </ul>`
                  : ''
              }
              <p>
                Bounce rate ${(report.bounceRate * 100).toFixed(2)}% · complaint rate
                ${(report.complaintRate * 100).toFixed(3)}%
              </p>`
          : html`<p>No report yet.</p>`
      }
    </section>
    <section aria-labelledby="preview-heading">
      <h2 id="preview-heading">Preview</h2>
      <p class="hint">As the first subscribed address of the list will see it.</p>
      <iframe
        title="Preview of the campaign message"
        src="/admin/campaigns/${campaign.id}/preview"
        class="preview"
        sandbox
      ></iframe>
    </section>
    <section aria-labelledby="test-heading">
      <h2 id="test-heading">Send a test</h2>
      <form novalidate method="post" action="/admin/campaigns/${campaign.id}/test" class="narrow">
        ${csrfField(csrf)}
        ${field({ name: 'addresses', label: 'Test addresses', required: true, hint: 'One or more addresses, separated by commas. The test uses the first subscriber’s merge fields.' })}
        <button type="submit">Send test</button>
      </form>
    </section>`;
}
