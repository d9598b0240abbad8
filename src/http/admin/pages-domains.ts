/**
 * Domain pages: the hosted domains, the DNS setup assistant of each (the records to publish
 * with copy buttons, a live check with findings, the readiness card), DKIM key rotation and
 * delegated DKIM, and aliases.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

import { checkDomain, checkReadiness, sendingAddressesOf } from '../../dns/check.js';
import type { CheckReport, ReadinessItem, RecordCheck } from '../../dns/check.js';
import { relativeName } from '../../dns/check-common.js';
import { domainRecords, type DnsRecordSuggestion } from '../../domains/records.js';
import * as rotation from '../../domains/rotation.js';
import * as service from '../../domains/service.js';
import type { DmarcForwardPolicy } from '../../store/types.js';

import {
  adminOnly,
  formValue,
  principalOf,
  redirect,
  sendPage,
  sessionOf,
  type AdminState,
} from './context.js';
import { csrfField, errorSummary, field, formatTime, html, type Html } from './html.js';

type Params = Record<string, string>;

/** Domains the signed-in user may see: all for administrators, the organisation's for members. */
async function visibleDomains(state: AdminState, request: FastifyRequest): Promise<string[]> {
  const session = sessionOf(request);
  const all = (await service.listDomains(state.context)).map((domain) => domain.name);
  if (adminOnly(session)) return all;
  if (!state.distribution || session.user.organisationId === null) return [];
  const own = await state.distribution.listDomains(
    principalOf(session),
    session.user.organisationId,
  );
  return all.filter((name) => own.includes(name));
}

async function requireVisible(
  state: AdminState,
  request: FastifyRequest,
  name: string,
): Promise<string> {
  const domain = name.toLowerCase();
  if (!(await visibleDomains(state, request)).includes(domain)) {
    throw new service.NotFoundError(`domain ${domain} not found`);
  }
  return domain;
}

function requireAdmin(request: FastifyRequest): void {
  if (!adminOnly(sessionOf(request))) throw new service.NotFoundError('not found');
}

export function registerDomainPages(app: FastifyInstance, state: AdminState): void {
  const changed = async () => {
    await state.onChange?.();
  };

  app.get('/admin/domains', async (request, reply) => {
    const names = await visibleDomains(state, request);
    return sendPage(
      request,
      reply,
      { title: 'Domains', section: 'domains' },
      domainList(names, adminOnly(sessionOf(request)), sessionOf(request).csrf),
    );
  });

  app.post('/admin/domains', async (request, reply) => {
    requireAdmin(request);
    const name = formValue(request.body, 'name');
    try {
      const { domain } = await service.addDomain(state.context, name);
      await changed();
      return redirect(
        reply,
        `/admin/domains/${encodeURIComponent(domain.name)}`,
        `Domain ${domain.name} added with new DKIM keys.`,
      );
    } catch (error) {
      if (!(error instanceof service.InvalidInputError || error instanceof service.ConflictError))
        throw error;
      const names = await visibleDomains(state, request);
      const message =
        error instanceof service.InvalidInputError
          ? `Enter a domain name such as club.example, without http:// or spaces (${error.message}).`
          : `${error.message}: open it from the list instead.`;
      return sendPage(
        request,
        reply,
        { title: 'Domains', section: 'domains' },
        domainList(names, true, sessionOf(request).csrf, { name, error: message }),
        400,
      );
    }
  });

  app.get('/admin/domains/:name', async (request, reply) => {
    const name = await requireVisible(state, request, (request.params as Params).name ?? '');
    const details = await service.getDomainDetails(state.context, name);
    const target = await rotation.domainCheckTarget(state.context, name);
    const status = await rotation.rotationStatus(state.context, name);
    const delegatedNames = new Set(
      status.delegationZone
        ? rotation.delegationCnames(name, status.delegationZone).map((record) => record.name)
        : [],
    );
    // Removed keys are left out, and with delegated DKIM the client publishes CNAMEs at the
    // slot names while the keys themselves go to the provider's zone.
    const records = domainRecords(details.domain, details.keys, state.context).filter(
      (record) =>
        !delegatedNames.has(record.name) &&
        target.records.some(
          (expected) => expected.name === record.name && expected.value === record.value,
        ),
    );
    const delegated = status.delegationZone
      ? rotation.delegationCnames(name, status.delegationZone)
      : [];
    const providerRecords = await rotation.delegationZoneRecords(state.context, name);
    const session = sessionOf(request);
    return sendPage(
      request,
      reply,
      { title: `Domain ${name}`, section: 'domains' },
      html`<p><a class="button" href="/admin/domains/${name}/check">Check DNS now</a></p>
        <section aria-labelledby="records-heading">
          <h2 id="records-heading">Records to publish</h2>
          <p>
            Add each record at your DNS provider. The <strong>Host</strong> column is what most
            providers' forms expect in their name field; the zone-file line is for providers that
            take a BIND file.
          </p>
          ${recordTable(records)}
          ${
            delegated.length > 0
              ? html`<h3>Delegated DKIM: CNAME records to publish once</h3>
                  ${recordTable(delegated)}`
              : ''
          }
          ${
            providerRecords.length > 0
              ? html`<h3>Records for the provider's zone ${status.delegationZone}</h3>
                  <p>These change at each rotation; the provider publishes them, not the client.</p>
                  ${recordTable(providerRecords.map((record) => ({ purpose: 'Delegated DKIM key', name: record.name, type: 'TXT' as const, value: record.value, zoneLine: record.zoneLine })))}`
              : ''
          }
        </section>
        ${rotationSection(name, status, session.csrf, adminOnly(session))}`,
    );
  });

  app.get('/admin/domains/:name/check', async (request, reply) => {
    const name = await requireVisible(state, request, (request.params as Params).name ?? '');
    const target = await rotation.domainCheckTarget(
      state.context,
      name,
      state.readiness?.sendingAddresses ?? [],
    );
    const report = await checkDomain(state.lookups, target);
    const sendingAddresses = await sendingAddressesOf(state.lookups, target);
    const card = await checkReadiness(state.lookups, report, {
      sendingAddresses,
      oneClickUnsubscribe: state.readiness?.oneClickUnsubscribe ?? true,
      outboundTls: state.readiness?.outboundTls ?? true,
    });
    return sendPage(
      request,
      reply,
      { title: `DNS check of ${name}`, section: 'domains' },
      checkPage(name, report, card),
    );
  });

  registerRotationRoutes(app, state, changed);
  registerAliasPages(app, state, changed);
}

function domainList(
  names: string[],
  canAdd: boolean,
  csrf: string,
  form: { name?: string; error?: string } = {},
): Html {
  const list =
    names.length === 0
      ? html`<p>No domain yet.</p>`
      : html`<ul class="cards">
          ${names.map(
            (name) =>
              html`<li>
                <a href="/admin/domains/${name}">${name}</a> ·
                <a href="/admin/domains/${name}/check">check DNS</a>
              </li>`,
          )}
        </ul>`;
  if (!canAdd) return list;
  return html`${list}
    <h2>Add a domain</h2>
    ${errorSummary(form.error ? [{ field: 'name', message: form.error }] : [])}
    <form novalidate method="post" action="/admin/domains" class="narrow">
      ${csrfField(csrf)}
      ${field({ name: 'name', label: 'Domain name', value: form.name ?? '', required: true, hint: 'For example club.example. Herald generates an RSA-2048 and an Ed25519 DKIM key.', ...(form.error ? { error: form.error } : {}) })}
      <button type="submit">Add domain</button>
    </form>`;
}

function recordTable(records: (Omit<DnsRecordSuggestion, 'type'> & { type: string })[]): Html {
  return html`<div class="table-wrap">
    <table class="records">
      <thead>
        <tr>
          <th scope="col">Purpose</th>
          <th scope="col">Type</th>
          <th scope="col">Host</th>
          <th scope="col">Value</th>
        </tr>
      </thead>
      <tbody>
        ${records.map(
          (record, index) =>
            html`<tr>
              <td>
                ${record.purpose}${record.note ? html`<p class="hint">${record.note}</p>` : ''}
              </td>
              <td>${record.type}</td>
              <td>
                <code>${relativeName(record.name)}</code>
                <p class="hint">${record.name}</p>
              </td>
              <td>
                <code class="value" id="value-${index}-${record.type}">${record.value}</code>
                <p>
                  <button type="button" class="copy" data-copy="${record.value}" hidden>
                    Copy value
                  </button>
                  <button type="button" class="copy" data-copy="${record.zoneLine}" hidden>
                    Copy zone-file line
                  </button>
                </p>
                <details>
                  <summary>Zone-file line</summary>
                  <pre>${record.zoneLine}</pre>
                </details>
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

const STATUS_LABEL: Record<RecordCheck['status'], string> = {
  ok: 'OK',
  warning: 'Warning',
  error: 'Error',
  unknown: 'Could not check',
};

function checkPage(name: string, report: CheckReport, card: ReadinessItem[]): Html {
  const errors = report.records.filter(
    (record) => record.status === 'error' || record.status === 'unknown',
  ).length;
  return html`<p class="summary ${report.ok ? 'good' : 'bad'}" role="status">
      ${report.ok ? 'Every record is published correctly.' : `${errors} record(s) need attention.`}
      Checked at ${formatTime(report.checkedAt)} UTC.
    </p>
    <p>
      <a href="/admin/domains/${name}">Back to the records of ${name}</a> ·
      <a href="/admin/domains/${name}/check">Check again</a>
    </p>
    <section aria-labelledby="findings-heading">
      <h2 id="findings-heading">Findings</h2>
      <ol class="checks">
        ${report.records.map(
          (record) =>
            html`<li
              class="check ${record.status}"
              data-name="${record.name}"
              data-status="${record.status}"
            >
              <h3>
                <span class="badge ${record.status}">${STATUS_LABEL[record.status]}</span>
                ${record.purpose} <small>${record.type} ${record.name}</small>
              </h3>
              ${
                record.findings.length > 0
                  ? html`<ul>
                      ${record.findings.map(
                        (finding) =>
                          html`<li class="finding ${finding.severity}" data-code="${finding.code}">
                            <strong>${finding.severity}:</strong> ${finding.message}
                            ${finding.fix ? html`<br /><span class="fix">Fix: ${finding.fix}</span>` : ''}
                          </li>`,
                      )}
                    </ul>`
                  : ''
              }
              ${
                record.status !== 'ok'
                  ? html`<details>
                      <summary>Expected and found</summary>
                      <p>Expected:</p>
                      <pre>${record.expected}</pre>
                      <p>Found:</p>
                      <pre>${record.found.length > 0 ? record.found.join('\n') : '(nothing)'}</pre>
                    </details>`
                  : ''
              }
            </li>`,
        )}
      </ol>
    </section>
    <section aria-labelledby="readiness-heading">
      <h2 id="readiness-heading">Readiness for bulk sending</h2>
      <p>
        Large mailbox providers (Gmail, Yahoo) require these of senders of more than a few thousand
        messages a day.
      </p>
      <ul class="readiness">
        ${card.map(
          (item) =>
            html`<li class="${item.status}" data-requirement="${item.requirement}">
              <span
                class="badge ${item.status === 'met' ? 'ok' : item.status === 'unknown' ? 'unknown' : 'error'}"
                >${item.status === 'met' ? 'Met' : item.status === 'unknown' ? 'Unknown' : 'Not met'}</span
              >
              <strong>${item.title}</strong><br />${item.detail}
            </li>`,
        )}
      </ul>
    </section>`;
}

function rotationSection(
  name: string,
  status: rotation.RotationStatus,
  csrf: string,
  canChange: boolean,
): Html {
  const action = (path: string, label: string, extra: Html = html``) =>
    html`<form
      novalidate
      method="post"
      action="/admin/domains/${name}/rotation/${path}"
      class="inline"
    >
      ${csrfField(csrf)}${extra}<button type="submit">${label}</button>
    </form>`;
  return html`<section aria-labelledby="rotation-heading">
    <h2 id="rotation-heading">DKIM keys and rotation</h2>
    <p class="rotation-stage" data-stage="${status.stage}" role="status">${status.message}</p>
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">Selector</th>
            <th scope="col">Algorithm</th>
            <th scope="col">Status</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          ${status.active.map(
            (key) =>
              html`<tr>
                <td>${key.selector}</td>
                <td>${key.algorithm}</td>
                <td>active (signs)</td>
                <td>${formatTime(key.createdAt)}</td>
              </tr>`,
          )}
          ${status.pending.map(
            ({ key, check }) =>
              html`<tr>
                <td>${key.selector}</td>
                <td>${key.algorithm}</td>
                <td>
                  pending: ${check ? (check.findings[0]?.message ?? 'served') : 'waiting for DNS'}
                </td>
                <td>${formatTime(key.createdAt)}</td>
              </tr>`,
          )}
          ${status.retired.map(
            (entry) =>
              html`<tr>
                <td>${entry.selector}</td>
                <td>${entry.key.algorithm}</td>
                <td>
                  retired:
                  ${entry.removable ? 'can be removed from DNS' : `keep published until ${formatTime(entry.removableAt)}`}
                </td>
                <td>${formatTime(entry.key.createdAt)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>
    ${
      canChange
        ? html`<div class="actions">
              ${status.stage !== 'waiting-for-dns' ? action('start', 'Start a key rotation') : action('advance', 'Check DNS and switch when served')}
              ${status.retired
                .filter((entry) => entry.removable)
                .map((entry) =>
                  action(
                    'remove',
                    `I removed ${entry.selector} from DNS`,
                    html`<input type="hidden" name="selector" value="${entry.selector}" />`,
                  ),
                )}
            </div>
            ${
              status.delegationZone
                ? ''
                : html`<details>
                    <summary>
                      Delegate DKIM to a zone you run (no client action at rotation)
                    </summary>
                    <form
                      method="post"
                      action="/admin/domains/${name}/rotation/delegate"
                      class="narrow"
                    >
                      ${csrfField(csrf)}
                      ${field({ name: 'zone', label: 'Delegation zone', required: true, hint: 'A zone the provider runs, such as dkim.provider.example. The client publishes four CNAME records once; later rotations only change this zone.' })}
                      <button type="submit">Use delegated DKIM</button>
                    </form>
                  </details>`
            }`
        : ''
    }
  </section>`;
}

function registerRotationRoutes(
  app: FastifyInstance,
  state: AdminState,
  changed: () => Promise<void>,
): void {
  const domainOf = async (request: FastifyRequest) => {
    requireAdmin(request);
    return requireVisible(state, request, (request.params as Params).name ?? '');
  };
  const back = (name: string) => `/admin/domains/${encodeURIComponent(name)}`;

  app.post('/admin/domains/:name/rotation/start', async (request, reply) => {
    const name = await domainOf(request);
    await rotation.startRotation(state.context, name);
    return redirect(reply, back(name), 'New keys created: publish the pending records below.');
  });

  app.post('/admin/domains/:name/rotation/advance', async (request, reply) => {
    const name = await domainOf(request);
    const status = await rotation.advanceRotation(state.context, state.lookups, name);
    if (status.stage !== 'waiting-for-dns') await changed();
    return redirect(reply, back(name), status.message);
  });

  app.post('/admin/domains/:name/rotation/remove', async (request, reply) => {
    const name = await domainOf(request);
    const status = await rotation.confirmRemoval(
      state.context,
      name,
      formValue(request.body, 'selector'),
    );
    return redirect(reply, back(name), status.message);
  });

  app.post('/admin/domains/:name/rotation/delegate', async (request, reply) => {
    const name = await domainOf(request);
    const zone = formValue(request.body, 'zone');
    try {
      await rotation.enableDelegation(state.context, name, zone);
    } catch (error) {
      if (!(error instanceof service.InvalidInputError)) throw error;
      return redirect(
        reply,
        back(name),
        `Enter the delegation zone as a domain name such as dkim.provider.example (${error.message}).`,
      );
    }
    return redirect(reply, back(name), 'Delegated DKIM enabled: publish the CNAME records once.');
  });
}

function registerAliasPages(
  app: FastifyInstance,
  state: AdminState,
  changed: () => Promise<void>,
): void {
  const render = async (request: FastifyRequest, form: AliasForm = {}) => {
    const names = await visibleDomains(state, request);
    const aliases = await Promise.all(
      names.map(async (name) => ({
        name,
        aliases: await service.listAliases(state.context, name),
      })),
    );
    return aliasPage(names, aliases, sessionOf(request).csrf, form);
  };

  app.get('/admin/aliases', async (request, reply) =>
    sendPage(request, reply, { title: 'Aliases', section: 'aliases' }, await render(request)),
  );

  app.post('/admin/aliases', async (request, reply) => {
    const body = request.body;
    const form: AliasForm = {
      address: formValue(body, 'address'),
      targets: formValue(body, 'targets'),
      dmarcPolicy: formValue(body, 'dmarcPolicy') || 'rewrite-from',
    };
    const errors: { field: string; message: string }[] = [];
    const domain = form.address?.slice(form.address.lastIndexOf('@') + 1).toLowerCase() ?? '';
    if (!form.address?.includes('@')) {
      errors.push({
        field: 'address',
        message: 'Enter the alias as local@domain, or *@domain for a catch-all.',
      });
    } else if (!(await visibleDomains(state, request)).includes(domain)) {
      errors.push({ field: 'address', message: `${domain} is not one of your hosted domains.` });
    }
    const targets = (form.targets ?? '').split(/[\s,]+/).filter(Boolean);
    if (targets.length === 0)
      errors.push({ field: 'targets', message: 'Enter at least one target address.' });
    if (errors.length === 0) {
      try {
        await service.addAlias(state.context, {
          address: form.address ?? '',
          targets,
          dmarcPolicy: form.dmarcPolicy as DmarcForwardPolicy,
        });
        await changed();
        return redirect(reply, '/admin/aliases', `Alias ${form.address} added.`);
      } catch (error) {
        if (!(error instanceof service.InvalidInputError || error instanceof service.ConflictError))
          throw error;
        const fieldName = /target/i.test(error.message) ? 'targets' : 'address';
        errors.push({
          field: fieldName,
          message: `${error.message}. Correct it and submit again.`,
        });
      }
    }
    return sendPage(
      request,
      reply,
      { title: 'Aliases', section: 'aliases' },
      await render(request, { ...form, errors }),
      400,
    );
  });

  app.post('/admin/aliases/delete', async (request, reply) => {
    const address = formValue(request.body, 'address');
    const domain = address.slice(address.lastIndexOf('@') + 1);
    await requireVisible(state, request, domain);
    await service.removeAlias(state.context, address);
    await changed();
    return redirect(reply, '/admin/aliases', `Alias ${address} removed.`);
  });
}

interface AliasForm {
  address?: string;
  targets?: string;
  dmarcPolicy?: string;
  errors?: { field: string; message: string }[];
}

function aliasPage(
  names: string[],
  byDomain: { name: string; aliases: Awaited<ReturnType<typeof service.listAliases>> }[],
  csrf: string,
  form: AliasForm,
): Html {
  const errorFor = (name: string) => form.errors?.find((error) => error.field === name)?.message;
  const policies: [string, string][] = [
    ['rewrite-from', 'Rewrite From to a Herald address, Reply-To the author'],
    ['forward', 'Forward unchanged'],
    ['reject', 'Reject at end of DATA'],
  ];
  return html`${byDomain.map(
      ({ name, aliases }) =>
        html`<h2>${name}</h2>
          ${
            aliases.length === 0
              ? html`<p>No alias.</p>`
              : html`<div class="table-wrap">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Address</th>
                        <th scope="col">Targets</th>
                        <th scope="col">DMARC policy</th>
                        <th scope="col">Enabled</th>
                        <th scope="col"><span class="visually-hidden">Actions</span></th>
                      </tr>
                    </thead>
                    <tbody>
                      ${aliases.map((alias) => {
                        const address = `${alias.localPart}@${name}`;
                        return html`<tr>
                          <td>${address}</td>
                          <td>${alias.targets.join(', ')}</td>
                          <td>${alias.dmarcPolicy}</td>
                          <td>${alias.enabled ? 'yes' : 'no (550)'}</td>
                          <td>
                            <form
                              novalidate
                              method="post"
                              action="/admin/aliases/delete"
                              class="inline"
                            >
                              ${csrfField(csrf)}
                              <input type="hidden" name="address" value="${address}" /><button
                                type="submit"
                                aria-label="Remove ${address}"
                              >
                                Remove
                              </button>
                            </form>
                          </td>
                        </tr>`;
                      })}
                    </tbody>
                  </table>
                </div>`
          }`,
    )}
    <h2>Add an alias</h2>
    ${
      names.length === 0
        ? html`<p>Add a domain first.</p>`
        : html` ${errorSummary(form.errors ?? [])}
            <form novalidate method="post" action="/admin/aliases" class="narrow">
              ${csrfField(csrf)}
              ${field({ name: 'address', label: 'Alias address', value: form.address ?? '', required: true, hint: `For example info@${names[0]}, or *@${names[0]} for every other address.`, ...(errorFor('address') ? { error: errorFor('address') } : {}) })}
              ${field({ name: 'targets', label: 'Forward to', value: form.targets ?? '', required: true, hint: 'One or more addresses, separated by commas or spaces.', ...(errorFor('targets') ? { error: errorFor('targets') } : {}) })}
              <div class="field">
                <label for="dmarcPolicy">When forwarding would fail DMARC</label>
                <select id="dmarcPolicy" name="dmarcPolicy">
                  ${policies.map(
                    ([value, label]) =>
                      html`<option
                        value="${value}"
                        ${value === (form.dmarcPolicy ?? 'rewrite-from') ? html` selected` : ''}
                      >
                        ${label}
                      </option>`,
                  )}
                </select>
              </div>
              <button type="submit">Add alias</button>
            </form>`
    }`;
}
