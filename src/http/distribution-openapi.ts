/** The OpenAPI 3.1 document of the distribution API, served at `/api/distribution/openapi.json`. */

const id = { name: 'id', in: 'path', required: true, schema: { type: 'integer', minimum: 1 } };
const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const ok = (description: string, schema: object = { type: 'object' }) => ({
  description,
  ...json(schema),
});
const errors = {
  '400': { description: 'Invalid request; `error` says which field and why' },
  '401': { description: 'Missing or unknown bearer token' },
  '404': { description: 'Not found, or owned by another organisation' },
  '409': { description: 'The object exists but its state or a unique name forbids the change' },
};

function operation(summary: string, extra: object = {}, response = ok(summary)): object {
  return { summary, responses: { '200': response, ...errors }, ...extra };
}

function body(properties: Record<string, object>, required: string[] = []): object {
  return { requestBody: { required: true, ...json({ type: 'object', properties, required }) } };
}

const str = { type: 'string' };
const int = { type: 'integer' };

export const DISTRIBUTION_OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'Herald distribution API',
    version: '0.1.0',
    description:
      'Organisations, lists, subscribers, imports, campaigns and reports. Every request ' +
      'needs `Authorization: Bearer TOKEN`; objects of another organisation answer 404.',
  },
  servers: [{ url: '/api' }],
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
  },
  security: [{ bearer: [] }],
  paths: {
    '/organisations': {
      get: operation('List the organisations the token can see'),
      post: operation('Create an organisation (administrators)', body({ name: str }, ['name'])),
    },
    '/organisations/{id}': { get: operation('Show an organisation', { parameters: [id] }) },
    '/organisations/{id}/domains': {
      get: operation('List the domains of an organisation', { parameters: [id] }),
      post: operation('Assign a hosted domain (administrators)', {
        parameters: [id],
        ...body({ domain: str }, ['domain']),
      }),
    },
    '/organisations/{id}/tokens': {
      post: operation('Create a member token; the secret is returned once', {
        parameters: [id],
        ...body({ label: str }),
      }),
    },
    '/lists': {
      get: operation('List the lists'),
      post: operation(
        'Create a list',
        body({ name: str, description: str, organisationId: int }, ['name']),
      ),
    },
    '/lists/{id}': { get: operation('Show a list', { parameters: [id] }) },
    '/lists/{id}/subscribers': {
      get: operation('Page through subscribers in id order', {
        parameters: [
          id,
          { name: 'afterId', in: 'query', schema: int },
          { name: 'limit', in: 'query', schema: { type: 'integer', maximum: 1000 } },
          { name: 'status', in: 'query', schema: str },
        ],
      }),
      post: operation('Add a subscriber', {
        parameters: [id],
        ...body({ address: str, name: str, fields: { type: 'object' } }, ['address']),
      }),
    },
    '/lists/{id}/import': {
      post: operation('Import subscribers from CSV with a header row', {
        parameters: [id],
        requestBody: { required: true, content: { 'text/csv': { schema: str } } },
      }),
    },
    '/lists/{id}/export': {
      get: operation('Export the list as CSV', { parameters: [id] }, {
        description: 'CSV',
        content: { 'text/csv': { schema: str } },
      } as never),
    },
    '/campaigns': {
      get: operation('List campaigns'),
      post: operation(
        'Create a campaign',
        body(
          {
            listId: int,
            from: str,
            fromName: str,
            replyTo: str,
            subject: str,
            html: str,
            text: str,
            ratePerMinute: int,
            scheduledAt: { type: 'string', format: 'date-time' },
            organisationId: int,
          },
          ['listId', 'from', 'subject', 'html'],
        ),
      ),
    },
    '/campaigns/{id}': { get: operation('Show a campaign', { parameters: [id] }) },
    '/campaigns/{id}/preview': {
      get: operation('Render the message for a subscriber', {
        parameters: [id, { name: 'address', in: 'query', schema: str }],
      }),
    },
    '/campaigns/{id}/test': {
      post: operation('Send to test addresses', {
        parameters: [id],
        ...body({ addresses: { type: 'array', items: str } }, ['addresses']),
      }),
    },
    '/campaigns/{id}/send': {
      post: operation('Send now, or at `at`', {
        parameters: [id],
        requestBody: { required: false, ...json({ type: 'object', properties: { at: str } }) },
      }),
    },
    '/campaigns/{id}/pause': { post: operation('Pause sending', { parameters: [id] }) },
    '/campaigns/{id}/resume': { post: operation('Resume sending', { parameters: [id] }) },
    '/campaigns/{id}/cancel': { post: operation('Cancel the campaign', { parameters: [id] }) },
    '/campaigns/{id}/progress': {
      get: operation('Queued, sent, delivered, deferred, bounced, remaining, rate and ETA', {
        parameters: [id],
      }),
    },
    '/campaigns/{id}/report': {
      get: operation('Totals, bounce and complaint rates with thresholds, recent events', {
        parameters: [id],
      }),
    },
    '/campaigns/{id}/recipients': {
      get: operation('Per-recipient status', {
        parameters: [id, { name: 'status', in: 'query', schema: str }],
      }),
    },
  },
};
