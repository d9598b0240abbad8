/**
 * The nodes page: which Herald nodes share the store, whether each is alive, and what each is
 * doing (queue entries it delivers under a lease, campaign batches it is sending).
 * Administrators only. On SQLite there is one node, this one.
 */
import type { FastifyInstance } from 'fastify';

import type { OpenBatch } from '../../distribution/types.js';
import type { NodeStatus } from '../../store/types.js';

import { adminOnly, principalOf, sendPage, sessionOf, type AdminState } from './context.js';
import { formatTime, html } from './html.js';

/** A node counts as alive when seen within this time (it claims at least every 30 s). */
const STALE_AFTER_MS = 90_000;

export function registerNodePages(app: FastifyInstance, state: AdminState): void {
  app.get('/admin/nodes', async (request, reply) => {
    const session = sessionOf(request);
    if (!adminOnly(session)) {
      throw Object.assign(new Error('not found'), { name: 'NotFoundError' });
    }
    const store = state.context.store;
    const [nodes, batches] = await Promise.all([
      store.listNodes?.({ staleAfterMs: STALE_AFTER_MS }),
      state.distribution?.openBatches(principalOf(session)) ?? Promise.resolve([]),
    ]);
    const batchesOf = (name: string): OpenBatch[] =>
      batches.filter((batch) => batch.owner === name);
    const shown: NodeStatus[] = nodes ?? [];
    // Batches of a sender that is no delivery node (a `herald campaign send`) get a row too.
    const senders = [...new Set(batches.map((batch) => batch.owner))].filter(
      (owner) => !shown.some((node) => node.name === owner),
    );

    return sendPage(
      request,
      reply,
      { title: 'Nodes', section: 'nodes' },
      html`${state.node ? html`<p>This page is served by <code>${state.node}</code>.</p>` : ''}
        ${
          nodes === undefined
            ? html`<p>
                The store is SQLite, so this is the only node. Several nodes share a PostgreSQL
                store (<code>store.url</code>).
              </p>`
            : ''
        }
        <div class="table-wrap">
          <table id="nodes">
            <thead>
              <tr>
                <th scope="col">Node</th>
                <th scope="col">State</th>
                <th scope="col">First seen (UTC)</th>
                <th scope="col">Last seen (UTC)</th>
                <th scope="col">Queue entries delivering</th>
                <th scope="col">Campaign batches sending</th>
              </tr>
            </thead>
            <tbody>
              ${shown.map(
                (node) =>
                  html`<tr>
                    <td>
                      <code>${node.name}</code>${node.name === state.node ? ' (this node)' : ''}
                    </td>
                    <td>${node.alive ? 'alive' : 'not seen for over 90 s'}</td>
                    <td>${formatTime(node.firstSeenAt)}</td>
                    <td>${formatTime(node.lastSeenAt)}</td>
                    <td>${node.leasedEntries}</td>
                    <td>${batchesOf(node.name).length}</td>
                  </tr>`,
              )}
              ${
                nodes === undefined && state.node && !senders.includes(state.node)
                  ? html`<tr>
                      <td><code>${state.node}</code> (this node)</td>
                      <td>alive</td>
                      <td></td>
                      <td></td>
                      <td></td>
                      <td>0</td>
                    </tr>`
                  : ''
              }
              ${senders.map(
                (owner) =>
                  html`<tr>
                    <td><code>${owner}</code>${owner === state.node ? ' (this node)' : ''}</td>
                    <td>sending a campaign</td>
                    <td></td>
                    <td></td>
                    <td></td>
                    <td>${batchesOf(owner).length}</td>
                  </tr>`,
              )}
            </tbody>
          </table>
        </div>
        <h2>Campaign batches in progress</h2>
        ${
          batches.length === 0
            ? html`<p>No campaign batch is being sent.</p>`
            : html`<div class="table-wrap">
                <table id="batches">
                  <thead>
                    <tr>
                      <th scope="col">Campaign</th>
                      <th scope="col">Subscriber ids</th>
                      <th scope="col">Sender</th>
                      <th scope="col">Claimed (UTC)</th>
                      <th scope="col">Lease until (UTC)</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${batches.map(
                      (batch) =>
                        html`<tr>
                          <td>
                            <a href="/admin/campaigns/${String(batch.campaignId)}"
                              >${String(batch.campaignId)}</a
                            >
                          </td>
                          <td>${String(batch.afterId + 1)} to ${String(batch.lastId)}</td>
                          <td><code>${batch.owner}</code></td>
                          <td>${formatTime(batch.createdAt)}</td>
                          <td>${formatTime(batch.leaseUntil)}</td>
                        </tr>`,
                    )}
                  </tbody>
                </table>
              </div>`
        }`,
    );
  });
}
