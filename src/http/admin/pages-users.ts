/**
 * Organisations and admin users with their roles: administrators see and change everything;
 * members see the domains, lists and campaigns of their organisation. Administrators only.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

import {
  adminOnly,
  formValue,
  principalOf,
  redirect,
  sendPage,
  sessionOf,
  type AdminState,
} from './context.js';
import { csrfField, errorSummary, field, html, type Html } from './html.js';

type FormErrors = { field: string; message: string }[];

function requireAdmin(request: FastifyRequest): void {
  if (!adminOnly(sessionOf(request))) {
    throw Object.assign(new Error('not found'), { name: 'NotFoundError' });
  }
}

export function registerUserPages(app: FastifyInstance, state: AdminState): void {
  const organisationsOf = async (request: FastifyRequest) =>
    state.distribution ? state.distribution.listOrganisations(principalOf(sessionOf(request))) : [];

  const organisationsPage = async (
    request: FastifyRequest,
    form: { name?: string; errors?: FormErrors } = {},
  ): Promise<Html> => {
    const csrf = sessionOf(request).csrf;
    if (!state.distribution)
      return html`<p>
        This server runs without the distribution service, so there are no organisations.
      </p>`;
    const organisations = await organisationsOf(request);
    const domains = await Promise.all(
      organisations.map(async (org) =>
        state.distribution!.listDomains(principalOf(sessionOf(request)), org.id),
      ),
    );
    const hosted = (await state.context.store.listDomains()).map((domain) => domain.name);
    const errorFor = (name: string) => form.errors?.find((error) => error.field === name)?.message;
    return html`${
        organisations.length === 0
          ? html`<p>No organisation yet.</p>`
          : html`<div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Organisation</th>
                    <th scope="col">Domains</th>
                    <th scope="col">Assign a domain</th>
                  </tr>
                </thead>
                <tbody>
                  ${organisations.map(
                    (org, index) =>
                      html`<tr>
                        <td>${org.name}</td>
                        <td>${(domains[index] ?? []).join(', ') || 'none'}</td>
                        <td>
                          <form
                            method="post"
                            action="/admin/organisations/${org.id}/domains"
                            class="inline"
                          >
                            ${csrfField(csrf)}
                            <label for="domain-${org.id}" class="visually-hidden"
                              >Domain for ${org.name}</label
                            >
                            <select id="domain-${org.id}" name="domain">
                              ${hosted.map((name) => html`<option>${name}</option>`)}
                            </select>
                            <button type="submit">Assign</button>
                          </form>
                        </td>
                      </tr>`,
                  )}
                </tbody>
              </table>
            </div>`
      }
      <h2>Create an organisation</h2>
      ${errorSummary(form.errors ?? [])}
      <form novalidate method="post" action="/admin/organisations" class="narrow">
        ${csrfField(csrf)}
        ${field({ name: 'name', label: 'Organisation name', value: form.name ?? '', required: true, ...(errorFor('name') ? { error: errorFor('name') } : {}) })}
        <button type="submit">Create organisation</button>
      </form>`;
  };

  app.get('/admin/organisations', async (request, reply) => {
    requireAdmin(request);
    return sendPage(
      request,
      reply,
      { title: 'Organisations', section: 'organisations' },
      await organisationsPage(request),
    );
  });

  app.post('/admin/organisations', async (request, reply) => {
    requireAdmin(request);
    const name = formValue(request.body, 'name');
    if (!state.distribution || name === '') {
      const errors = [{ field: 'name', message: 'Enter the organisation’s name.' }];
      return sendPage(
        request,
        reply,
        { title: 'Organisations', section: 'organisations' },
        await organisationsPage(request, { name, errors }),
        400,
      );
    }
    await state.distribution.createOrganisation(principalOf(sessionOf(request)), name);
    return redirect(reply, '/admin/organisations', `Organisation ${name} created.`);
  });

  app.post('/admin/organisations/:id/domains', async (request, reply) => {
    requireAdmin(request);
    const id = Number((request.params as Record<string, string>).id);
    const domain = formValue(request.body, 'domain');
    if (!state.distribution) return redirect(reply, '/admin/organisations');
    await state.distribution.assignDomain(principalOf(sessionOf(request)), id, domain);
    return redirect(reply, '/admin/organisations', `${domain} assigned.`);
  });

  const usersPage = async (
    request: FastifyRequest,
    form: Record<string, string> = {},
    errors: FormErrors = [],
  ): Promise<Html> => {
    const csrf = sessionOf(request).csrf;
    const users = await state.users.list();
    const organisations = await organisationsOf(request);
    const orgName = (id: number | null) => organisations.find((org) => org.id === id)?.name ?? '';
    const errorFor = (name: string) => errors.find((error) => error.field === name)?.message;
    return html`${
        users.length === 0
          ? html`<p>No user yet: you signed in with an API token.</p>`
          : html`<div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">User</th>
                    <th scope="col">Role</th>
                    <th scope="col">Organisation</th>
                    <th scope="col"><span class="visually-hidden">Actions</span></th>
                  </tr>
                </thead>
                <tbody>
                  ${users.map(
                    (user) =>
                      html`<tr>
                        <td>${user.username}</td>
                        <td>${user.role}</td>
                        <td>${orgName(user.organisationId)}</td>
                        <td>
                          <form
                            novalidate
                            method="post"
                            action="/admin/users/delete"
                            class="inline"
                          >
                            ${csrfField(csrf)}<input
                              type="hidden"
                              name="username"
                              value="${user.username}"
                            />
                            <button
                              type="submit"
                              class="danger"
                              aria-label="Remove ${user.username}"
                            >
                              Remove
                            </button>
                          </form>
                        </td>
                      </tr>`,
                  )}
                </tbody>
              </table>
            </div>`
      }
      <h2>Add a user</h2>
      ${errorSummary(errors)}
      <form novalidate method="post" action="/admin/users" class="narrow">
        ${csrfField(csrf)}
        ${field({ name: 'username', label: 'User name', value: form.username ?? '', required: true, autocomplete: 'off', ...(errorFor('username') ? { error: errorFor('username') } : {}) })}
        ${field({ name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'new-password', hint: 'At least 10 characters.', ...(errorFor('password') ? { error: errorFor('password') } : {}) })}
        <div class="field">
          <label for="role">Role</label
          ><select id="role" name="role">
            <option value="member" ${form.role !== 'admin' ? html` selected` : ''}>
              Member: one organisation's domains, lists and campaigns
            </option>
            <option value="admin" ${form.role === 'admin' ? html` selected` : ''}>
              Administrator: everything
            </option>
          </select>
        </div>
        <div class="field${errorFor('organisationId') ? ' invalid' : ''}">
          <label for="organisationId">Organisation (members)</label>
          ${errorFor('organisationId') ? html`<p class="error" id="organisationId-error">${errorFor('organisationId')}</p>` : ''}
          <select id="organisationId" name="organisationId">
            <option value="">none</option>
            ${organisations.map((org) => html`<option value="${org.id}">${org.name}</option>`)}
          </select>
        </div>
        <button type="submit">Add user</button>
      </form>`;
  };

  app.get('/admin/users', async (request, reply) => {
    requireAdmin(request);
    return sendPage(request, reply, { title: 'Users', section: 'users' }, await usersPage(request));
  });

  app.post('/admin/users', async (request, reply) => {
    requireAdmin(request);
    const form = {
      username: formValue(request.body, 'username'),
      role: formValue(request.body, 'role') === 'admin' ? 'admin' : 'member',
      organisationId: formValue(request.body, 'organisationId'),
    };
    const problem = await state.users.add({
      username: form.username,
      password: ((request.body as Record<string, unknown>).password as string) ?? '',
      role: form.role as 'admin' | 'member',
      organisationId: form.organisationId === '' ? null : Number(form.organisationId),
    });
    if (problem) {
      return sendPage(
        request,
        reply,
        { title: 'Users', section: 'users' },
        await usersPage(request, form, [problem]),
        400,
      );
    }
    return redirect(reply, '/admin/users', `User ${form.username} added.`);
  });

  app.post('/admin/users/delete', async (request, reply) => {
    requireAdmin(request);
    const username = formValue(request.body, 'username');
    await state.users.remove(username);
    return redirect(reply, '/admin/users', `User ${username} removed.`);
  });
}
