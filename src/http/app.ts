/**
 * The HTTP server: the REST API under `/api/` (JSON, bearer tokens from `api.tokens`) and
 * `/metrics` for Prometheus. The API runs the same service functions as the CLI. With no token
 * configured, every API request gets 401, so a fresh install exposes nothing.
 * `/metrics` and `/healthz` need no token: they carry counts, never addresses or secrets.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';

import type { ManagementContext } from '../domains/context.js';
import { domainRecords } from '../domains/records.js';
import * as service from '../domains/service.js';
import type { DmarcForwardPolicy, QueueStatus } from '../store/types.js';

import { registerDnsCheckRoutes } from './admin/api-check.js';
import { adminPlugin, type AdminOptions } from './admin/index.js';
import { distributionPlugin, type DistributionPluginOptions } from './distribution-plugin.js';
import type { Metrics } from './metrics.js';

export interface HttpAppOptions {
  context: ManagementContext;
  metrics: Metrics;
  /** Bearer tokens that may use the API. */
  tokens: readonly string[];
  logger?: Logger;
  /** Called after a change to domains, keys, aliases or credentials, so the server reloads. */
  onChange?: () => Promise<void> | void;
  /** Called after `retry`, so delivery workers wake up. */
  onRetry?: () => void;
  /** The web admin under `/admin` and the DNS check routes of the API. */
  admin?: AdminOptions;
  /** Lists and campaigns under `/api`, and the unsubscribe pages under `/u/`. */
  distribution?: DistributionPluginOptions;
}

const QUEUE_STATUSES: readonly QueueStatus[] = ['queued', 'deferred', 'delivered', 'failed'];

/** Maps the service layer's error classes to HTTP status codes. */
const STATUS_BY_ERROR: Record<string, number> = {
  InvalidInputError: 400,
  NotFoundError: 404,
  ConflictError: 409,
};

export function buildHttpApp(options: HttpAppOptions): FastifyInstance {
  const loggerInstance: FastifyBaseLogger | undefined = options.logger?.child({
    component: 'http',
  });
  const app = Fastify({
    ...(loggerInstance ? { loggerInstance } : {}),
    // Per-request lines would drown the message log; errors are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
  });
  const { context, metrics } = options;
  const changed = async () => {
    await options.onChange?.();
  };

  app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
    const status = STATUS_BY_ERROR[error.name] ?? error.statusCode ?? 500;
    if (status >= 500) request.log.error({ err: error, url: request.url }, 'API request failed');
    void reply.code(status).send({ error: status >= 500 ? 'internal error' : error.message });
  });

  app.get('/healthz', () => ({ status: 'ok' }));
  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.render(context.store);
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(text);
  });

  void app.register(
    (api, _options, done) => {
      api.addHook('onRequest', async (request, reply) =>
        authenticate(request, reply, options.tokens),
      );
      registerDomainRoutes(api, context, changed);
      registerQueueRoutes(api, context, options.onRetry);
      if (options.admin) registerDnsCheckRoutes(api, options.admin);
      done();
    },
    { prefix: '/api' },
  );
  if (options.distribution) void app.register(distributionPlugin, options.distribution);
  if (options.admin) void app.register(adminPlugin, options.admin);
  return app;
}

/** Compares the bearer token with each configured one in constant time (by SHA-256 digest). */
async function authenticate(
  request: FastifyRequest,
  reply: FastifyReply,
  tokens: readonly string[],
) {
  const header = request.headers.authorization ?? '';
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  const offered = match?.[1] ? digest(match[1]) : undefined;
  const accepted =
    offered !== undefined && tokens.some((token) => timingSafeEqual(digest(token), offered));
  if (!accepted) {
    await reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="herald"')
      .send({ error: 'missing or invalid bearer token' });
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

type Params = Record<string, string>;
type Body = Record<string, unknown>;

function stringField(body: Body, name: string, required: true): string;
function stringField(body: Body, name: string, required?: false): string | undefined;
function stringField(body: Body, name: string, required = false): string | undefined {
  const value = body[name];
  if (value === undefined || value === null) {
    if (required) throw new service.InvalidInputError(`missing field ${name}`);
    return undefined;
  }
  if (typeof value !== 'string')
    throw new service.InvalidInputError(`field ${name} must be a string`);
  return value;
}

function bodyOf(request: FastifyRequest): Body {
  const body = request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new service.InvalidInputError('the request body must be a JSON object');
  }
  return body as Body;
}

function registerDomainRoutes(
  api: FastifyInstance,
  context: ManagementContext,
  changed: () => Promise<void>,
): void {
  api.get('/domains', () => service.listDomains(context));

  api.post('/domains', async (request, reply) => {
    const body = bodyOf(request);
    const name = stringField(body, 'name', true);
    const srsDomain = stringField(body, 'srsDomain') ?? null;
    const created = await service.addDomain(context, name, { srsDomain });
    await changed();
    const records = domainRecords(created.domain, created.keys, context);
    return reply.code(201).send({ ...created, records });
  });

  api.get('/domains/:name', async (request) => {
    const { name } = request.params as Params;
    const details = await service.getDomainDetails(context, name ?? '');
    return { ...details, records: domainRecords(details.domain, details.keys, context) };
  });

  api.delete('/domains/:name', async (request, reply) => {
    await service.removeDomain(context, (request.params as Params).name ?? '');
    await changed();
    return reply.code(204).send();
  });

  api.get('/domains/:name/aliases', (request) =>
    service.listAliases(context, (request.params as Params).name ?? ''),
  );

  api.post('/aliases', async (request, reply) => {
    const body = bodyOf(request);
    const targets = body.targets;
    if (!Array.isArray(targets) || !targets.every((t): t is string => typeof t === 'string')) {
      throw new service.InvalidInputError('field targets must be an array of addresses');
    }
    if (body.enabled !== undefined && typeof body.enabled !== 'boolean') {
      throw new service.InvalidInputError('field enabled must be a boolean');
    }
    const alias = await service.addAlias(context, {
      address: stringField(body, 'address', true),
      targets,
      enabled: body.enabled ?? true,
      dmarcPolicy: (stringField(body, 'dmarcPolicy') ?? 'rewrite-from') as DmarcForwardPolicy,
      replace: body.replace === true,
    });
    await changed();
    return reply.code(201).send(alias);
  });

  api.delete('/aliases/:address', async (request, reply) => {
    await service.removeAlias(context, (request.params as Params).address ?? '');
    await changed();
    return reply.code(204).send();
  });

  api.get('/domains/:name/credentials', (request) =>
    service.listCredentials(context, (request.params as Params).name ?? ''),
  );

  api.post('/credentials', async (request, reply) => {
    const body = bodyOf(request);
    const domain = stringField(body, 'domain');
    const credential = await service.addCredential(context, {
      username: stringField(body, 'username', true),
      password: stringField(body, 'password', true),
      ...(domain ? { domain } : {}),
    });
    await changed();
    return reply.code(201).send(credential);
  });

  api.delete('/credentials/:username', async (request, reply) => {
    await service.removeCredential(context, (request.params as Params).username ?? '');
    await changed();
    return reply.code(204).send();
  });
}

function registerQueueRoutes(
  api: FastifyInstance,
  context: ManagementContext,
  onRetry: (() => void) | undefined,
): void {
  api.get('/queue', (request) => {
    const query = request.query as Params;
    const status = query.status as QueueStatus | undefined;
    if (status !== undefined && !QUEUE_STATUSES.includes(status)) {
      throw new service.InvalidInputError(`invalid status ${JSON.stringify(status)}`);
    }
    const limit = query.limit === undefined ? 1000 : Number(query.limit);
    if (!Number.isSafeInteger(limit) || limit <= 0) {
      throw new service.InvalidInputError(`invalid limit ${JSON.stringify(query.limit)}`);
    }
    return context.store.listEntries({
      ...(status ? { status } : {}),
      ...(query.domain ? { recipientDomain: query.domain.toLowerCase() } : {}),
      limit,
    });
  });

  api.get('/queue/:queueId', async (request) => {
    const { queueId = '' } = request.params as Params;
    const entries = await context.store.listEntriesOfMessage(queueId);
    if (entries.length === 0) throw new service.NotFoundError(`queue id ${queueId} not found`);
    const events = await context.store.listEvents({ messageId: queueId });
    const { body: withBody } = request.query as Params;
    if (withBody !== '1' && withBody !== 'true') return { entries, events };
    const body = await context.store.getMessageBody(queueId);
    return { entries, events, body: body?.toString('latin1') };
  });

  api.post('/queue/retry', async () => {
    const changed = await context.store.retryNow({ all: true });
    onRetry?.();
    return { changed };
  });

  api.post('/queue/:queueId/retry', async (request) => {
    const { queueId = '' } = request.params as Params;
    const changed = await context.store.retryNow({ messageId: queueId });
    if (changed === 0) throw new service.NotFoundError(`no entry of ${queueId} to retry`);
    onRetry?.();
    return { changed };
  });

  api.delete('/queue/:queueId', async (request) => {
    const { queueId = '' } = request.params as Params;
    const deleted = await context.store.deleteEntries({ messageId: queueId });
    if (deleted === 0) throw new service.NotFoundError(`queue id ${queueId} not found`);
    return { deleted };
  });
}
