/**
 * The distribution REST API under `/api`: organisations, lists, subscribers, CSV imports and
 * exports, campaigns and their reports. Requests carry `Authorization: Bearer TOKEN` with an
 * organisation token (`herald org token`) or one of the administrator tokens of `api.tokens`.
 * An object of another organisation gets 404, the same as one that does not exist.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

import type { FastifyInstance, FastifyRequest } from 'fastify';

import {
  ADMIN,
  InvalidRequestError,
  type DistributionService,
  type Principal,
} from '../distribution/service.js';
import type { RecipientStatus, SubscriberStatus } from '../distribution/types.js';
import { DISTRIBUTION_OPENAPI } from './distribution-openapi.js';

export interface DistributionRoutesOptions {
  service: DistributionService;
  /** Tokens from `api.tokens`; they act as administrators. */
  adminTokens: readonly string[];
  /** Called after a campaign is sent or resumed, so the scheduler starts it at once. */
  onCampaignStarted?: () => void;
}

const STATUS_BY_ERROR: Record<string, number> = {
  NotFoundError: 404,
  InvalidRequestError: 400,
  CampaignError: 400,
  StoreConflictError: 409,
  StateConflictError: 409,
  StoreNotFoundError: 404,
};

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

type Body = Record<string, unknown>;

export function registerDistributionRoutes(
  app: FastifyInstance,
  options: DistributionRoutesOptions,
): void {
  const { service } = options;
  const adminDigests = options.adminTokens.map(digest);

  app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
    const status = STATUS_BY_ERROR[error.name] ?? error.statusCode ?? 500;
    if (status >= 500)
      request.log.error({ err: error, url: request.url }, 'distribution API request failed');
    void reply.code(status).send({ error: status >= 500 ? 'internal error' : error.message });
  });

  // CSV imports stream: the parser hands the request stream on without buffering it.
  if (!app.hasContentTypeParser('text/csv')) {
    app.addContentTypeParser('text/csv', (_request, payload, done) => done(null, payload));
  }

  app.get('/distribution/openapi.json', () => DISTRIBUTION_OPENAPI);

  app.addHook('onRequest', async (request, reply) => {
    if (request.url.startsWith('/api/distribution/openapi.json')) return;
    const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
    const token = match?.[1];
    if (token) {
      const offered = digest(token);
      if (adminDigests.some((known) => timingSafeEqual(known, offered))) {
        request.principal = ADMIN;
        return;
      }
      request.principal = await service.authenticate(token);
    }
    if (!request.principal) {
      await reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="herald"')
        .send({ error: 'missing or invalid bearer token' });
    }
  });

  registerOrganisationRoutes(app, service);
  registerListRoutes(app, service);
  registerCampaignRoutes(app, service, options.onCampaignStarted);
}

function registerOrganisationRoutes(app: FastifyInstance, service: DistributionService): void {
  app.get('/organisations', (request) => service.listOrganisations(principal(request)));
  app.post('/organisations', async (request, reply) => {
    const name = stringField(bodyOf(request), 'name', true);
    return reply.code(201).send(await service.createOrganisation(principal(request), name));
  });
  app.get('/organisations/:id', (request) =>
    service.getOrganisation(principal(request), idParam(request)),
  );
  app.get('/organisations/:id/domains', (request) =>
    service.listDomains(principal(request), idParam(request)),
  );
  app.post('/organisations/:id/domains', async (request, reply) => {
    const domain = stringField(bodyOf(request), 'domain', true);
    await service.assignDomain(principal(request), idParam(request), domain);
    return reply.code(204).send();
  });
  app.post('/organisations/:id/tokens', async (request, reply) => {
    const body = bodyOf(request);
    const label = stringField(body, 'label') ?? '';
    const token = await service.createToken(principal(request), idParam(request), 'member', label);
    return reply.code(201).send({ token });
  });
}

function registerListRoutes(app: FastifyInstance, service: DistributionService): void {
  app.get('/lists', (request) => service.listLists(principal(request)));
  app.post('/lists', async (request, reply) => {
    const body = bodyOf(request);
    const list = await service.createList(
      principal(request),
      organisationOf(request, body),
      stringField(body, 'name', true),
      stringField(body, 'description') ?? '',
    );
    return reply.code(201).send(list);
  });
  app.get('/lists/:id', (request) => service.getList(principal(request), idParam(request)));
  app.get('/lists/:id/subscribers', (request) => {
    const query = request.query as Record<string, string | undefined>;
    return service.listSubscribers(principal(request), idParam(request), {
      afterId: query.afterId ? Number(query.afterId) : undefined,
      limit: query.limit ? Number(query.limit) : undefined,
      status: query.status as SubscriberStatus | undefined,
    });
  });
  app.post('/lists/:id/subscribers', async (request, reply) => {
    const body = bodyOf(request);
    const fields = body.fields;
    if (
      fields !== undefined &&
      (typeof fields !== 'object' || fields === null || Array.isArray(fields))
    ) {
      throw new InvalidRequestError('field fields must be an object of strings');
    }
    const subscriber = await service.addSubscriber(principal(request), idParam(request), {
      address: stringField(body, 'address', true),
      name: stringField(body, 'name') ?? '',
      fields: Object.fromEntries(
        Object.entries((fields ?? {}) as Body).map(([key, value]) => [key, String(value)]),
      ),
    });
    return reply.code(201).send(subscriber);
  });
  app.post('/lists/:id/import', async (request) => {
    const body = request.body;
    if (!body || typeof (body as Readable).pipe !== 'function') {
      throw new InvalidRequestError('send the CSV as the request body with Content-Type: text/csv');
    }
    return service.importCsv(principal(request), idParam(request), body as Readable);
  });
  app.get('/lists/:id/export', async (request, reply) => {
    const id = idParam(request);
    await service.getList(principal(request), id);
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/csv; charset=utf-8',
      'content-disposition': `attachment; filename="list-${id}.csv"`,
    });
    await service.exportCsv(principal(request), id, reply.raw);
  });
}

function registerCampaignRoutes(
  app: FastifyInstance,
  service: DistributionService,
  started?: () => void,
): void {
  app.get('/campaigns', (request) => service.listCampaigns(principal(request)));
  app.post('/campaigns', async (request, reply) => {
    const body = bodyOf(request);
    const scheduledAt = stringField(body, 'scheduledAt');
    const campaign = await service.createCampaign(principal(request), {
      organisationId: organisationOf(request, body),
      listId: numberField(body, 'listId', true),
      name: stringField(body, 'name') ?? '',
      fromAddress: stringField(body, 'from', true),
      fromName: stringField(body, 'fromName') ?? '',
      replyTo: stringField(body, 'replyTo') ?? '',
      subject: stringField(body, 'subject', true),
      html: stringField(body, 'html', true),
      text: stringField(body, 'text') ?? '',
      ratePerMinute: numberField(body, 'ratePerMinute') ?? 0,
      scheduledAt: scheduledAt ? parseDate(scheduledAt) : null,
    });
    return reply.code(201).send(campaign);
  });
  app.get('/campaigns/:id', (request) => service.getCampaign(principal(request), idParam(request)));
  app.get('/campaigns/:id/preview', async (request, reply) => {
    const address = (request.query as Record<string, string | undefined>).address;
    const message = await service.preview(principal(request), idParam(request), address);
    return reply.type('message/rfc822').send(message);
  });
  app.post('/campaigns/:id/test', async (request) => {
    const addresses = bodyOf(request).addresses;
    if (
      !Array.isArray(addresses) ||
      !addresses.every((item): item is string => typeof item === 'string')
    ) {
      throw new InvalidRequestError('field addresses must be an array of addresses');
    }
    return { queueIds: await service.sendTest(principal(request), idParam(request), addresses) };
  });
  app.post('/campaigns/:id/send', async (request) => {
    const at = stringField(optionalBody(request), 'at');
    const campaign = await service.send(
      principal(request),
      idParam(request),
      at ? parseDate(at) : undefined,
    );
    started?.();
    return campaign;
  });
  app.post('/campaigns/:id/pause', (request) =>
    service.pause(principal(request), idParam(request)),
  );
  app.post('/campaigns/:id/resume', async (request) => {
    const campaign = await service.resume(principal(request), idParam(request));
    started?.();
    return campaign;
  });
  app.post('/campaigns/:id/cancel', (request) =>
    service.cancel(principal(request), idParam(request)),
  );
  app.get('/campaigns/:id/progress', (request) =>
    service.progress(principal(request), idParam(request)),
  );
  app.get('/campaigns/:id/report', (request) =>
    service.report(principal(request), idParam(request)),
  );
  app.get('/campaigns/:id/recipients', async (request) => {
    const query = request.query as Record<string, string | undefined>;
    const campaign = await service.getCampaign(principal(request), idParam(request));
    return service.listRecipients(principal(request), campaign.id, {
      status: query.status as RecipientStatus | undefined,
      afterId: query.afterId ? Number(query.afterId) : undefined,
      limit: query.limit ? Math.min(Number(query.limit), 1000) : 100,
    });
  });
}

function principal(request: FastifyRequest): Principal {
  return request.principal!;
}

/** Returns the organisation of a new object: a member's own, or `organisationId` for an admin. */
function organisationOf(request: FastifyRequest, body: Body): number {
  const who = principal(request);
  if (who.role === 'member') return who.organisationId;
  return numberField(body, 'organisationId', true);
}

function idParam(request: FastifyRequest): number {
  const id = Number((request.params as Record<string, string>).id);
  if (!Number.isSafeInteger(id) || id <= 0)
    throw new InvalidRequestError('the id in the path must be a positive integer');
  return id;
}

function bodyOf(request: FastifyRequest): Body {
  const body = request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequestError('the request body must be a JSON object');
  }
  return body as Body;
}

function optionalBody(request: FastifyRequest): Body {
  return request.body === undefined || request.body === null ? {} : bodyOf(request);
}

function stringField(body: Body, name: string, required: true): string;
function stringField(body: Body, name: string, required?: false): string | undefined;
function stringField(body: Body, name: string, required = false): string | undefined {
  const value = body[name];
  if (value === undefined || value === null) {
    if (required) throw new InvalidRequestError(`missing field ${name}`);
    return undefined;
  }
  if (typeof value !== 'string') throw new InvalidRequestError(`field ${name} must be a string`);
  return value;
}

function numberField(body: Body, name: string, required: true): number;
function numberField(body: Body, name: string, required?: false): number | undefined;
function numberField(body: Body, name: string, required = false): number | undefined {
  const value = body[name];
  if (value === undefined || value === null) {
    if (required) throw new InvalidRequestError(`missing field ${name}`);
    return undefined;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidRequestError(`field ${name} must be a number`);
  }
  return value;
}

function parseDate(value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime()))
    throw new InvalidRequestError(`invalid date "${value}": use ISO 8601`);
  return date;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
